"""Step 6: densities per group, weights from densities with the floor rule, and the bootstrap
resamples and percentile intervals of both (see the package docstring for the rules).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from automixer_core.errors import ConfigError


def floor_weights(
    density: np.ndarray, tokens: np.ndarray, min_weight: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights from densities with the floor rule of the package docstring, vectorised over rows.

    Args:
        density: [..., G] influence densities ρ_g.
        tokens: [..., G] token counts T_g (used only where every ρ ≤ 0: token-share fallback).
        min_weight: the floor m (G·m ≤ 1).

    Returns:
        ``(weights, floored, fallback)``: [..., G] weights (≥ m, sum 1), [..., G] bool floored,
        [...] bool "every ρ ≤ 0, token shares used".
    """
    rho = np.asarray(density, dtype=np.float64)
    tok = np.broadcast_to(np.asarray(tokens, dtype=np.float64), rho.shape)
    lead = rho.shape[:-1]
    g = rho.shape[-1]
    rho2 = rho.reshape(-1, g)
    tok2 = tok.reshape(-1, g)
    pos = np.maximum(rho2, 0.0)
    fallback = pos.sum(axis=1) <= 0.0
    base = np.where(fallback[:, None], tok2, pos)
    # No tokens either: every group equal.
    base = np.where((base.sum(axis=1) <= 0.0)[:, None], 1.0, base)
    floored = base <= 0.0
    w = np.zeros_like(base)
    for _ in range(g + 1):
        free = ~floored
        rest = 1.0 - min_weight * floored.sum(axis=1, keepdims=True)
        denom = np.where(free, base, 0.0).sum(axis=1, keepdims=True)
        share = np.where(free, base, 0.0) / np.where(denom > 0.0, denom, 1.0)
        w = np.where(free, rest * share, min_weight)
        newly = free & (w < min_weight)
        if not newly.any():
            break
        floored = floored | newly
    return w.reshape(*lead, g), floored.reshape(*lead, g), fallback.reshape(lead)


def _densities(
    codes: np.ndarray, contrib: np.ndarray, n: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ρ, T, documents) per code 0..k-1 (ρ = 0 where T = 0)."""
    num = np.bincount(codes, weights=contrib, minlength=k)
    tok = np.bincount(codes, weights=n, minlength=k)
    docs = np.bincount(codes, minlength=k)
    rho = np.divide(num, tok, out=np.zeros(k), where=tok > 0)
    return rho, tok, docs


def _bootstrap(
    codes_list: Sequence[tuple[np.ndarray, int]],
    contrib: np.ndarray,
    n: np.ndarray,
    resamples: int,
    seed: int,
) -> list[np.ndarray]:
    """[R, k] densities and token counts per code set, over the same document resamples."""
    rng = np.random.default_rng(seed)
    size = len(n)
    out_rho = [np.zeros((resamples, k)) for _, k in codes_list]
    out_tok = [np.zeros((resamples, k)) for _, k in codes_list]
    for r in range(resamples):
        idx = rng.integers(0, size, size)
        c_r = contrib[idx]
        n_r = n[idx]
        for j, (codes, k) in enumerate(codes_list):
            cr = codes[idx]
            num = np.bincount(cr, weights=c_r, minlength=k)
            tok = np.bincount(cr, weights=n_r, minlength=k)
            out_rho[j][r] = np.divide(num, tok, out=np.zeros(k), where=tok > 0)
            out_tok[j][r] = tok
    return [x for pair in zip(out_rho, out_tok, strict=True) for x in pair]


def _interval(samples: np.ndarray | None, ci: float, k: int) -> list[tuple[float, float] | None]:
    if samples is None:
        return [None] * k
    q = np.quantile(samples, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0], axis=0)
    return [(float(q[0, j]), float(q[1, j])) for j in range(k)]


def _check_floor(count: int, min_weight: float, what: str) -> None:
    if count * min_weight > 1.0 + 1e-12:
        raise ConfigError(
            f"min_weight={min_weight} for {count} {what} asks for {count * min_weight:.3f} > 1 in floors",
            expected=f"min_weight ≤ 1/{count} = {1.0 / count:.4f}",
            fix="lower aggregation.min_weight",
        )
