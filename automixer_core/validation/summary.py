"""The validation document: paired differences, learning curves and tokens-to-reach, from the
per-question metrics of every target run (values in, values out; no storage)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from automixer_core.errors import ConfigError
from automixer_core.validation.metrics import METRICS
from automixer_core.validation.stats import MEAN, paired_differences, tokens_to_reach

#: What the headline compares: the mean over benchmarks of acc_norm at the final checkpoint.
HEADLINE_METRIC = "acc_norm"


def stack_runs(
    per_question: Mapping[tuple[str, int, str], pd.DataFrame], candidate: str, seeds: list[int], metric: str
) -> dict[str, np.ndarray]:
    """benchmark → metric matrix [seeds, questions] of one candidate at its final checkpoint.

    Args:
        per_question: (candidate, seed, benchmark) → the final checkpoint's question table
            (index doc_id, columns :data:`METRICS`).
    """
    benches = sorted({b for (c, _, b) in per_question if c == candidate})
    out = {}
    for bench in benches:
        frames = [per_question[(candidate, s, bench)].sort_index() for s in seeds]
        index = frames[0].index
        for f in frames[1:]:
            if not f.index.equals(index):
                raise ConfigError(
                    f"Candidate {candidate!r} was evaluated on different questions of {bench!r} across seeds",
                    fix="evaluate every target on the same eval_limit and seed",
                )
        out[bench] = np.stack([f[metric].to_numpy(dtype=np.float64) for f in frames])
    return out


def learning_curves(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """candidate → [{step, tokens, <metric>: mean over benchmarks and seeds, per_benchmark: {...}}]."""
    curves: dict[str, list[dict[str, Any]]] = {}
    by_candidate: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_candidate.setdefault(run["candidate"], []).append(run)
    for name, cand_runs in sorted(by_candidate.items()):
        points = []
        steps = sorted({p["step"] for r in cand_runs for p in r["steps"]})
        for step in steps:
            at = [p for r in cand_runs for p in r["steps"] if p["step"] == step]
            benches = sorted(at[0]["metrics"])
            point: dict[str, Any] = {"step": step, "tokens": at[0]["tokens_seen"]}
            point["loss"] = float(np.mean([p["loss"] for p in at]))
            per_bench = {
                b: {m: float(np.mean([p["metrics"][b][m] for p in at])) for m in METRICS} for b in benches
            }
            for m in METRICS:
                point[m] = float(np.mean([per_bench[b][m] for b in benches]))
            point["per_benchmark"] = per_bench
            points.append(point)
        curves[name] = points
    return curves


def summarize_validation(
    runs: list[dict[str, Any]],
    per_question: Mapping[tuple[str, int, str], pd.DataFrame],
    baselines: list[str],
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparisons of a validation.

    Args:
        runs: one dict per target run: ``candidate, seed, steps: [{step, tokens_seen, loss,
            metrics: {benchmark: {metric: value}}}]`` (the last step is the final checkpoint).
        per_question: (candidate, seed, benchmark) → the final checkpoint's question table.
        baselines: the candidates the others are compared with.

    Returns:
        ``final``: candidate → metric → benchmark (and ``mean``) → {value, stderr over seeds};
        ``differences``: list of {candidate, baseline, metric, benchmark, delta, lo, hi, ...};
        ``curves``; ``tokens_to_reach``: candidate → baseline → fraction of the baseline's tokens
        the candidate needs to reach the baseline's final mean acc_norm (None: never).
    """
    candidates = sorted({r["candidate"] for r in runs})
    seeds_of = {c: sorted(r["seed"] for r in runs if r["candidate"] == c) for c in candidates}
    if len({tuple(s) for s in seeds_of.values()}) > 1:
        raise ConfigError(
            f"Candidates were trained with different seeds: {seeds_of}",
            fix="train every candidate with the same validation.seeds",
        )
    seeds = seeds_of[candidates[0]]
    final: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    stacked: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for c in candidates:
        final[c] = {}
        stacked[c] = {}
        for m in METRICS:
            mats = stack_runs(per_question, c, seeds, m)
            stacked[c][m] = mats
            per_seed_mean = np.mean([mat.mean(axis=1) for mat in mats.values()], axis=0)  # [S]
            entry = {
                b: {"value": float(mat.mean()), "seed_std": _std(mat.mean(axis=1))} for b, mat in mats.items()
            }
            entry[MEAN] = {"value": float(per_seed_mean.mean()), "seed_std": _std(per_seed_mean)}
            final[c][m] = entry
    differences = []
    for base in baselines:
        for c in candidates:
            if c == base:
                continue
            for m in METRICS:
                diffs = paired_differences(stacked[c][m], stacked[base][m], n_boot=n_boot, ci=ci, seed=seed)
                for bench, d in diffs.items():
                    differences.append(
                        {"candidate": c, "baseline": base, "metric": m, "benchmark": bench, **asdict(d)}
                    )
    curves = learning_curves(runs)
    reach: dict[str, dict[str, float | None]] = {}
    for base in baselines:
        target = curves[base][-1][HEADLINE_METRIC]
        budget = curves[base][-1]["tokens"]
        for c in candidates:
            if c == base:
                continue
            t = tokens_to_reach(
                [p["tokens"] for p in curves[c]], [p[HEADLINE_METRIC] for p in curves[c]], target
            )
            reach.setdefault(c, {})[base] = None if t is None else t / budget
    return {
        "candidates": candidates,
        "seeds": seeds,
        "metrics": list(METRICS),
        "headline_metric": HEADLINE_METRIC,
        "final": final,
        "differences": differences,
        "curves": curves,
        "tokens_to_reach": reach,
    }


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
