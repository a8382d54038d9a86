"""Paired differences and the two-level bootstrap against a slow reference; tokens-to-reach."""

from __future__ import annotations

import numpy as np
import pytest

from automixer_core.errors import ConfigError
from automixer_core.validation.stats import MEAN, paired_differences, tokens_to_reach


def _slow_reference(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], n_boot: int, ci: float, seed: int
) -> dict[str, tuple[float, float, float]]:
    """The same statistic written out with loops: the same draws (taken in the documented order:
    the seed matrix first, then each benchmark's question matrix in name order), explicit sums."""
    names = sorted(a)
    n_seeds = a[names[0]].shape[0]
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    question_draws = {n: rng.integers(0, a[n].shape[1], size=(n_boot, a[n].shape[1])) for n in names}
    out = {}
    boots: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        q = a[n].shape[1]
        for r in range(n_boot):
            total = 0.0
            for qi in question_draws[n][r]:
                sa = sum(a[n][s, qi] for s in seed_draws[r]) / n_seeds
                sb = sum(b[n][s, qi] for s in seed_draws[r]) / n_seeds
                total += sa - sb
            boots[n].append(total / q)
        delta = sum(a[n][s, qi] - b[n][s, qi] for s in range(n_seeds) for qi in range(q)) / (n_seeds * q)
        lo, hi = np.quantile(boots[n], [(1 - ci) / 2, (1 + ci) / 2])
        out[n] = (delta, lo, hi)
    mean_boot = [sum(boots[n][r] for n in names) / len(names) for r in range(n_boot)]
    lo, hi = np.quantile(mean_boot, [(1 - ci) / 2, (1 + ci) / 2])
    out[MEAN] = (sum(out[n][0] for n in names) / len(names), lo, hi)
    return out


def _results(rng: np.random.Generator, seeds: int, shift: float) -> tuple[dict[str, np.ndarray], ...]:
    qs = {"arc": 40, "piqa": 25}
    a = {n: (rng.random((seeds, q)) < 0.5 + shift).astype(float) for n, q in qs.items()}
    b = {n: (rng.random((seeds, q)) < 0.5).astype(float) for n, q in qs.items()}
    return a, b


@pytest.mark.parametrize("seeds", [1, 3])
def test_bootstrap_matches_the_slow_reference(seeds: int) -> None:
    a, b = _results(np.random.default_rng(1), seeds, 0.1)
    fast = paired_differences(a, b, n_boot=200, ci=0.9, seed=7)
    slow = _slow_reference(a, b, 200, 0.9, 7)
    for name, (delta, lo, hi) in slow.items():
        got = fast[name]
        assert got.delta == pytest.approx(delta, abs=1e-12)
        assert (got.lo, got.hi) == pytest.approx((lo, hi), abs=1e-12)
        assert got.seeds == seeds


def test_identical_candidates_differ_by_exactly_zero_and_a_real_gap_is_found() -> None:
    a, _ = _results(np.random.default_rng(2), 3, 0.0)
    same = paired_differences(a, a, n_boot=100)
    assert all(d.delta == 0 and d.lo == 0 and d.hi == 0 for d in same.values())
    # a large true difference on 400 questions × 3 seeds: the interval excludes 0 and holds the truth
    rng = np.random.default_rng(3)
    better = {"x": (rng.random((3, 400)) < 0.7).astype(float)}
    worse = {"x": (rng.random((3, 400)) < 0.5).astype(float)}
    d = paired_differences(better, worse, n_boot=500)["x"]
    assert d.excludes_zero and d.lo < 0.2 < d.hi


def test_pairing_removes_the_question_difficulty_from_the_interval() -> None:
    """Questions of very different difficulty, the same on both sides up to a small shift: the
    paired interval is narrow; an unpaired comparison would be dominated by the difficulty spread."""
    rng = np.random.default_rng(4)
    difficulty = rng.normal(0, 1.0, size=300)
    a = {"ll": np.stack([difficulty + 0.05 + rng.normal(0, 0.01, 300) for _ in range(3)])}
    b = {"ll": np.stack([difficulty + rng.normal(0, 0.01, 300) for _ in range(3)])}
    d = paired_differences(a, b, n_boot=300)["ll"]
    assert d.lo > 0.04 and d.hi < 0.06


def test_mismatched_inputs_are_refused() -> None:
    a = {"x": np.zeros((2, 5))}
    with pytest.raises(ConfigError, match="same benchmarks"):
        paired_differences(a, {"y": np.zeros((2, 5))})
    with pytest.raises(ConfigError, match="seed counts"):
        paired_differences(a, {"x": np.zeros((3, 5))})
    with pytest.raises(ConfigError, match="shapes"):
        paired_differences(a, {"x": np.zeros((2, 4))})


def test_tokens_to_reach_interpolates_between_checkpoints() -> None:
    tokens = [100, 200, 300, 400]
    values = [0.2, 0.4, 0.5, 0.6]
    assert tokens_to_reach(tokens, values, 0.45) == pytest.approx(250.0)
    assert tokens_to_reach(tokens, values, 0.1) == 100.0  # already there at the first checkpoint
    assert tokens_to_reach(tokens, values, 0.6) == pytest.approx(400.0)
    assert tokens_to_reach(tokens, values, 0.61) is None
    assert tokens_to_reach([100, 200], [0.5, 0.3], 0.4) == 100.0
