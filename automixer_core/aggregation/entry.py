"""The public entry point :func:`aggregate` (steps 4-6 on a scores table), with the checks of the
scores table, the per-benchmark scaling of the grouping (:func:`normalized_scores`), the group
and domain tables, and :func:`artifact_steps` (the steps from a selection table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from automixer_core.aggregation.alpha import _mean_step, alpha_weights
from automixer_core.aggregation.config import (
    RESIDUAL,
    SCORE_PREFIX,
    UNLABELLED,
    Aggregation,
    AggregationConfig,
    StepValue,
)
from automixer_core.aggregation.residual import _harmful_domains, _move_note, _move_record
from automixer_core.aggregation.weights import (
    _bootstrap,
    _check_floor,
    _densities,
    _interval,
    floor_weights,
)
from automixer_core.errors import AutoMixerError, ConfigError


def _score_matrix(scores: pd.DataFrame, benchmarks: Sequence[str]) -> np.ndarray:
    cols = []
    for b in benchmarks:
        if b in scores.columns:
            cols.append(b)
        elif SCORE_PREFIX + b in scores.columns:
            cols.append(SCORE_PREFIX + b)
        else:
            raise ConfigError(
                f"The scores table has no column for benchmark {b!r}",
                expected=f"a float column {b!r} (or {SCORE_PREFIX + b!r}) of I_b(x) per document",
                fix=f"add the column, or drop {b!r} from the steps; columns present: {list(scores.columns)}",
            )
    try:
        mat = scores[cols].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AutoMixerError(
            f"Score columns {cols} are not numeric ({exc})",
            expected="float influence scores",
            fix="pass the columns written by the influence step",
        ) from exc
    bad = ~np.isfinite(mat)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise AutoMixerError(
            f"{int(bad.sum())} influence score(s) are NaN or infinite, first: document "
            f"{scores['doc_id'].iloc[r]!r}, benchmark {benchmarks[c]!r}",
            expected="finite scores for every document and benchmark",
            fix="re-run scoring for the affected shard (an overflow in low precision is the usual cause)",
        )
    return mat


def _check_table(scores: pd.DataFrame) -> np.ndarray:
    missing = [c for c in ("doc_id", "n_tokens") if c not in scores.columns]
    if missing:
        raise ConfigError(
            f"The scores table lacks column(s) {missing}",
            expected="columns doc_id, n_tokens, optional domain, and one score column per benchmark",
            fix="concatenate the per-shard score files (they carry doc_id and n_tokens)",
        )
    if scores.empty:
        raise AutoMixerError("The scores table is empty", fix="score at least one corpus shard first")
    dup = scores["doc_id"].duplicated()
    if dup.any():
        raise AutoMixerError(
            f"{int(dup.sum())} document id(s) appear more than once, first {scores['doc_id'][dup].iloc[0]!r}",
            expected="one row per document",
            fix="check that no shard was scored twice, and average multi-checkpoint scores into one column",
        )
    n = pd.to_numeric(scores["n_tokens"], errors="coerce").to_numpy(dtype=np.float64)
    if (~np.isfinite(n)).any() or (n < 0).any():
        raise AutoMixerError(
            "Column n_tokens has missing or negative values",
            expected="token counts n_x ≥ 0",
            fix="write n_tokens from the tokenizer used for scoring",
        )
    if n.sum() <= 0:
        raise AutoMixerError("Every document has 0 tokens", fix="check the n_tokens column")
    return n


def _table(
    names: Sequence[str],
    weights: np.ndarray,
    intervals: Sequence[tuple[float, float] | None],
    tokens: np.ndarray,
    docs: np.ndarray,
    rho: np.ndarray,
    floored: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": list(names),
            "weight": weights.astype(np.float64),
            "weight_ci": list(intervals),
            "tokens": tokens.round().astype(np.int64),
            "documents": docs.astype(np.int64),
            "mean_doc_tokens": tokens / np.maximum(docs, 1),
            "density": rho.astype(np.float64),
            "floored": floored.astype(bool),
        }
    )


def normalized_scores(mat: np.ndarray, method: Literal["none", "zscore", "rank"]) -> np.ndarray:
    """The score matrix [N, B] as the grouping compares it: raw, z-scored per benchmark column
    ((x − mean)/std, std 0 → 1), or ranked per column (average ranks / N, in (0, 1])."""
    if method == "none" or len(mat) == 0:
        return mat
    if method == "zscore":
        std = mat.std(axis=0)
        return (mat - mat.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return np.column_stack(
        [pd.Series(mat[:, b]).rank(method="average").to_numpy() for b in range(mat.shape[1])]
    ) / len(mat)


def aggregate(
    scores: pd.DataFrame,
    steps: Mapping[str, StepValue],
    config: AggregationConfig | None = None,
    *,
    domain_column: str = "domain",
) -> Aggregation:
    """Groups, weights, intervals and per-domain weights from a scores table (DESIGN §1 steps 4-6).

    Args:
        scores: the scores table described in the package docstring.
        steps: benchmark → artifact step s_(b) (or a list of steps, averaged). Its keys, in order,
            are the benchmarks; each needs a score column.
        config: aggregation options.
        domain_column: the column of corpus labels for per-domain weights (skipped when absent).

    Returns:
        An :class:`Aggregation`.
    """
    config = config or AggregationConfig()
    n = _check_table(scores)
    benchmarks = [str(b) for b in steps]
    if config.residual and RESIDUAL in benchmarks:
        raise ConfigError(
            f"A benchmark is named {RESIDUAL!r}, the name of the residual group",
            fix="rename the benchmark, or set aggregation.residual: false",
        )
    step_means = {b: _mean_step(b, steps[b]) for b in benchmarks}
    alpha, notes = alpha_weights(step_means, config.alpha)
    mat = _score_matrix(scores, benchmarks)  # [N, B]
    a = np.array([alpha[b] for b in benchmarks])
    joint = mat @ a  # step 4
    nb = len(benchmarks)

    contrib = joint * n

    # Domain labels (for the domain rule, per-domain weights and the notes).
    has_domain = domain_column in scores.columns
    dom_names: list[str] = []
    dcodes = np.zeros(len(n), dtype=np.int64)
    if has_domain:
        labels = scores[domain_column].astype("string").fillna(UNLABELLED).replace("", UNLABELLED)
        cat = pd.Categorical(labels.to_numpy(dtype=object))
        dom_names = [str(c) for c in cat.categories]
        dcodes = np.asarray(cat.codes, dtype=np.int64)
        _check_floor(len(dom_names), config.min_weight, "domains")
    doc_domains = np.asarray(dom_names, dtype=object)[dcodes] if has_domain else None

    # Step 5: groups (code nb = residual); each rule moves what the ones before it left.
    codes = np.argmax(normalized_scores(mat, config.normalize), axis=1)
    moves: list[dict[str, Any]] = []
    if config.residual:
        rules: list[tuple[str, np.ndarray]] = [("all_negative", np.asarray((mat < 0).all(axis=1)))]
        if config.residual_rule == "negative_joint":
            rules.append(("negative_joint", joint < config.residual_threshold))
        if has_domain and config.residual_domains != "off":
            bad = _harmful_domains(dcodes, len(dom_names), contrib, n, config)
            rules.append(("negative_domain", bad[dcodes]))
        harmful = np.zeros(len(n), dtype=bool)
        for rule, hit in rules:
            moved = hit & ~harmful
            if moved.any():
                moves.append(_move_record(rule, moved, n, doc_domains))
                if rule != "all_negative":  # the paper's own rule needs no note
                    notes.append(_move_note(moves[-1], config.residual_threshold))
            harmful |= hit
        codes = np.where(harmful, nb, codes)
    all_names = [*benchmarks, RESIDUAL]
    counts = np.bincount(codes, minlength=nb + 1)
    present = [j for j in range(nb + 1) if counts[j] > 0]
    empty = [benchmarks[j] for j in range(nb) if counts[j] == 0]
    if empty:
        notes.append(f"groups: benchmark(s) {empty} are the top benchmark of no document, so have no group")
    remap = np.full(nb + 1, -1)
    remap[present] = np.arange(len(present))
    gcodes = remap[codes]
    names = [all_names[j] for j in present]
    k = len(names)
    _check_floor(k, config.min_weight, "groups")

    # Step 6: densities and weights.
    rho, tok, docs = _densities(gcodes, contrib, n, k)
    w, floored, fallback = floor_weights(rho, tok, config.min_weight)
    if bool(fallback):
        notes.append("weights: every group density is ≤ 0; fell back to token shares")
    fl = [names[j] for j in range(k) if floored[j]]
    if fl:
        notes.append(f"weights: group(s) {fl} floored at min_weight={config.min_weight}")

    # driven_by: C_gb = (1/T_g) Σ_{x∈g} α_b I_b(x) n_x.
    parts = np.stack(
        [np.bincount(gcodes, weights=a[b] * mat[:, b] * n, minlength=k) for b in range(nb)], axis=1
    )
    parts = np.divide(parts, tok[:, None], out=np.zeros_like(parts), where=tok[:, None] > 0)
    driven_by: list[list[dict[str, Any]]] = []
    for j in range(k):
        mag = np.abs(parts[j])
        tot = mag.sum()
        share = mag / tot if tot > 0 else np.zeros(nb)
        order = [int(b) for b in np.lexsort((np.arange(nb), -share))]
        driven_by.append(
            [
                {"benchmark": benchmarks[b], "share": float(share[b]), "contribution": float(parts[j, b])}
                for b in order
            ]
        )

    # Bootstrap.
    samples: np.ndarray | None = None
    dsamples: np.ndarray | None = None
    if config.bootstrap > 0:
        sets = [(gcodes, k)] + ([(dcodes, len(dom_names))] if has_domain else [])
        boot = _bootstrap(sets, contrib, n, config.bootstrap, config.seed)
        samples = floor_weights(boot[0], boot[1], config.min_weight)[0]
        if has_domain:
            dsamples = floor_weights(boot[2], boot[3], config.min_weight)[0]

    groups = _table(names, w, _interval(samples, config.ci, k), tok, docs, rho, floored)
    groups["driven_by"] = pd.Series(driven_by, dtype=object)

    domains: pd.DataFrame | None = None
    if has_domain:
        kd = len(dom_names)
        drho, dtok, ddocs = _densities(dcodes, contrib, n, kd)
        dw, dfl, dfb = floor_weights(drho, dtok, config.min_weight)
        if bool(dfb):
            notes.append("domain weights: every domain density is ≤ 0; fell back to token shares")
        domains = _table(dom_names, dw, _interval(dsamples, config.ci, kd), dtok, ddocs, drho, dfl)

    membership = pd.DataFrame(
        {
            "doc_id": scores["doc_id"].astype(str).to_numpy(),
            "group": np.asarray(names, dtype=object)[gcodes],
            "joint_score": joint,
            "n_tokens": n.round().astype(np.int64),
        }
    )
    if doc_domains is not None:
        membership["domain"] = doc_domains

    return Aggregation(
        groups=groups,
        domains=domains,
        membership=membership,
        alpha=alpha,
        steps=step_means,
        benchmarks=benchmarks,
        config=config,
        notes=notes,
        weight_samples=samples,
        domain_weight_samples=dsamples,
        residual_moves=moves,
    )


def artifact_steps(selection: pd.DataFrame) -> dict[str, float]:
    """benchmark → mean artifact step from a selection table (``benchmark, step`` columns).

    With ``best`` selection that is the one chosen step; with ``top_k``/``all`` the mean of the
    chosen steps (whose score columns are averaged into one per benchmark, see the package doc).
    """
    if not {"benchmark", "step"} <= set(selection.columns):
        raise ConfigError(
            "The selection table lacks columns benchmark and step",
            fix="pass the table returned by select_artifacts",
        )
    return {str(b): float(g["step"].mean()) for b, g in selection.groupby("benchmark", sort=True)}
