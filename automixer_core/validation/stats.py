"""Paired differences between candidates, with a two-level bootstrap over questions and seeds.

A candidate's result on benchmark b is a matrix ``m[s, q]``: the metric of target seed s on question
q (the same questions for every candidate). The difference of candidate A to baseline B is

    Δ_b = (1/Q) Σ_q ( mean_s A[s, q] − mean_s B[s, q] ),      Δ_mean = (1/|B|) Σ_b Δ_b.

The interval is the percentile interval of Δ over resamples that draw the seeds (with
replacement, the same draw for A and B, since seed s of every candidate shares the initialisation
and data order; and the same draw for every benchmark) and, per benchmark, the questions (with
replacement, the same draw for A and B: paired over questions). With one seed only the questions
vary, and the interval says nothing about seed noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from automixer_core.errors import ConfigError

MEAN = "mean"


@dataclass(frozen=True)
class PairedDifference:
    """Δ of a candidate to a baseline on one benchmark (or the mean over benchmarks).

    Attributes:
        delta: the point estimate Δ (metric units: accuracy points as a fraction, or nats/char).
        lo, hi: the bootstrap percentile interval at coverage ``ci``.
        questions: questions per seed (summed over benchmarks for the mean).
        seeds: seeds per candidate.
    """

    delta: float
    lo: float
    hi: float
    questions: int
    seeds: int
    ci: float

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


def _check(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> tuple[list[str], int]:
    if not a or sorted(a) != sorted(b):
        raise ConfigError(
            f"Paired differences need the same benchmarks on both sides (got {sorted(a)} and {sorted(b)})",
            fix="evaluate both candidates on the same benchmarks",
        )
    seeds = {m.shape[0] for m in [*a.values(), *b.values()]}
    if len(seeds) != 1:
        raise ConfigError(
            f"Candidates have different seed counts {sorted(seeds)}",
            fix="train every candidate with the same validation.seeds",
        )
    for name in a:
        if a[name].shape != b[name].shape or a[name].ndim != 2 or a[name].shape[1] == 0:
            raise ConfigError(
                f"Benchmark {name!r}: result shapes {a[name].shape} and {b[name].shape} differ or are empty",
                expected="[seeds, questions] on the same questions",
                fix="evaluate both candidates on the same questions",
            )
    return sorted(a), seeds.pop()


def paired_differences(
    a: Mapping[str, np.ndarray],
    b: Mapping[str, np.ndarray],
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
) -> dict[str, PairedDifference]:
    """Δ of ``a`` to ``b`` per benchmark and their mean (key :data:`MEAN`), with intervals.

    Args:
        a, b: benchmark → metric matrix [seeds, questions] (same shapes, same question order).
        n_boot: bootstrap resamples.
        ci: interval coverage.
        seed: seed of the resampling.
    """
    names, n_seeds = _check(a, b)
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))  # [R, S]
    out: dict[str, PairedDifference] = {}
    boots = []
    deltas = []
    for name in names:
        diff = a[name].astype(np.float64) - b[name].astype(np.float64)  # [S, Q]
        q = diff.shape[1]
        question_draws = rng.integers(0, q, size=(n_boot, q))  # [R, Q]
        by_seed = diff[seed_draws].mean(axis=1)  # [R, Q]: seed-averaged difference per question
        boot = np.take_along_axis(by_seed, question_draws, axis=1).mean(axis=1)  # [R]
        delta = float(diff.mean())
        boots.append(boot)
        deltas.append(delta)
        out[name] = _interval(delta, boot, ci, q, n_seeds)
    mean_boot = np.mean(boots, axis=0)
    out[MEAN] = _interval(float(np.mean(deltas)), mean_boot, ci, sum(a[n].shape[1] for n in names), n_seeds)
    return out


def _interval(delta: float, boot: np.ndarray, ci: float, questions: int, seeds: int) -> PairedDifference:
    lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return PairedDifference(delta, float(lo), float(hi), questions, seeds, ci)


def tokens_to_reach(tokens: list[int], values: list[float], target: float) -> float | None:
    """Tokens at which a learning curve first reaches ``target``, interpolating linearly between
    evaluated checkpoints (from 0 tokens at the first value when it already reaches it); None if never.

    Args:
        tokens: tokens seen at each evaluated checkpoint, increasing.
        values: the metric there (higher = better).
    """
    if len(tokens) != len(values):
        raise ValueError(f"{len(tokens)} token counts but {len(values)} values")
    prev_t, prev_v = None, None
    for t, v in zip(tokens, values, strict=True):
        if v >= target:
            if prev_t is None or prev_v is None or v == prev_v:
                return float(t)
            return float(prev_t + (target - prev_v) / (v - prev_v) * (t - prev_t))
        prev_t, prev_v = t, v
    return None
