"""Joint influence, task-aligned groups and their sampling weights (DESIGN §1 steps 4-6).

Input: a *scores table*, one row per source document, with columns

- ``doc_id`` (unique), ``n_tokens`` (n_x ≥ 0), optionally ``domain`` (a corpus label);
- one float column per benchmark b holding I_b(x), already oriented (positive = a training step on
  x lowers b's loss). The column is named ``b`` (or ``score__b``, the name the influence engine
  writes). With ``top_k``/``all`` selection a benchmark has several artifact checkpoints: average
  their score columns into one column per benchmark first, and pass the mean of their steps.

plus ``steps``: the artifact step s_(b) of every benchmark (a number, or a list whose mean is used).

The rules, with the choices that are ours (DESIGN §1 marks them so):

- Step 4, joint influence: I_joint(x) = Σ_b α_b I_b(x) with α_b = s_(b) / Σ_b' s_(b') (``alpha:
  step``, the paper) or α_b = 1/B (``uniform``). If every step is 0, α falls back to uniform.
- Step 5, groups: g(x) = argmax_b Ĩ_b(x) (ties go to the benchmark listed first), where Ĩ_b is
  I_b scaled per benchmark by ``normalize`` (none: Ĩ = I; zscore; rank). With ``residual: true``
  a harmful document goes to the group ``residual`` instead: by ``residual_rule:
  negative_joint`` (default) one with I_joint(x) < ``residual_threshold`` (0) or negative for
  every benchmark; by ``all_negative`` only one negative (< 0) for every b. With
  ``residual_domains: relative`` (default) every document of a labelled domain whose joint density
  ρ_d (step 6 over all its documents) is below −``residual_scale`` (0.5) × the median |ρ_d'| of
  the domains goes there too, its documents' own scores notwithstanding: clearly harmful on the
  corpus's own scale, where a domain near 0 (a skill the checkpoint already knows) stays.
  ``confident``: ρ_d's ``residual_level`` bootstrap quantile is below ``residual_threshold``;
  ``negative``: ρ_d is; ``off``: never. Each document moved is counted under the first
  rule that moves it, in the order all_negative, negative_joint, negative_domain
  (``Aggregation.residual_moves``). Benchmarks that win no document have no group (a note says so).
- Step 6, density: ρ_g = (1/T_g) Σ_{x∈g} I_joint(x)·n_x with T_g = Σ_{x∈g} n_x (ρ_g = 0 when
  T_g = 0).
- Step 6, weights with the floor m = ``min_weight`` (``floor_weights``): let ρ⁺ = max(ρ, 0).
  Groups with ρ_g ≤ 0 are *floored*: they get exactly m. The others share 1 − m·|floored| in
  proportion to ρ⁺; any of them whose share falls below m is floored too, and the split repeats
  until no share is below m. So every weight is ≥ m, they sum to 1, and with m = 0 this is
  w_g = ρ⁺_g / Σρ⁺. If every ρ ≤ 0 there is no signal: the weights fall back to token shares
  T_g / T (then floored the same way) and a note says so. G·m must be ≤ 1.
- Per-domain weights (where the table has ``domain``): the same density and floor rule with the
  domain labels as groups.
- Bootstrap intervals: resample documents with replacement (resample r draws
  ``rng.integers(0, N, N)`` from ``numpy.random.default_rng(seed)``, in order r = 0, 1, ...),
  recompute every density and weight with each document's group fixed, and take the
  ``(1 − ci)/2`` and ``(1 + ci)/2`` percentiles (numpy's default linear quantile). A group that
  draws no document in a resample has ρ = 0 there (so it is floored in that resample).
- ``driven_by``: the density splits exactly into per-benchmark parts,
  ρ_g = Σ_b C_gb with C_gb = (1/T_g) Σ_{x∈g} α_b I_b(x)·n_x. Each benchmark's ``share`` is
  |C_gb| / Σ_b' |C_gb'| (non-negative, sums to 1; all 0 when every C_gb is 0) and
  ``contribution`` is the signed C_gb; sorted by share, largest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from automixer_core.errors import AutoMixerError, ConfigError

RESIDUAL = "residual"
SCORE_PREFIX = "score__"
UNLABELLED = "(unlabelled)"

StepValue = int | float | Sequence[int] | Sequence[float]


class AggregationConfig(BaseModel):
    """How scores become groups and weights (DESIGN §1 steps 4-6)."""

    model_config = ConfigDict(extra="forbid")

    alpha: Literal["step", "uniform"] = Field(
        "step", description="α_b ∝ s_(b), the artifact step (paper), or uniform 1/B"
    )
    min_weight: float = Field(
        0.0, ge=0.0, lt=1.0, description="floor for every weight; groups with density ≤ 0 get exactly this"
    )
    residual: bool = Field(True, description="route documents by residual_rule to the group `residual`")
    residual_rule: Literal["negative_joint", "all_negative"] = Field(
        "negative_joint",
        description="negative_joint: a document with I_joint < residual_threshold is harmful overall and "
        "goes to residual | all_negative: only documents negative for every benchmark do",
    )
    residual_threshold: float = Field(
        0.0, description="negative_joint: documents with I_joint below this go to residual"
    )
    residual_domains: Literal["relative", "confident", "negative", "off"] = Field(
        "relative",
        description="documents of a labelled domain go to residual when its joint density ρ_d is: below "
        "−residual_scale × the median |ρ| of the domains (relative) | below residual_threshold at the "
        "residual_level bootstrap quantile (confident) | below residual_threshold (negative) | never (off)",
    )
    residual_scale: float = Field(
        0.5,
        ge=0.0,
        description="relative: a domain is harmful when ρ_d < −residual_scale · median_d' |ρ_d'|, so a "
        "domain near 0 (a skill the checkpoint already knows) stays",
    )
    residual_level: float = Field(
        0.75,
        ge=0.5,
        lt=1.0,
        description="confident: the one-sided bootstrap level; a domain moves when this quantile of its "
        "density is below residual_threshold (0.75: harmful with odds 3:1)",
    )
    normalize: Literal["none", "zscore", "rank"] = Field(
        "rank",
        description="per-benchmark scaling of the scores before the argmax grouping (the joint influence "
        "and densities stay raw): none | zscore (mean 0, std 1 per benchmark) | rank (percentile)",
    )
    bootstrap: int = Field(200, ge=0, description="bootstrap resamples of documents (0: no intervals)")
    ci: float = Field(0.9, gt=0.0, lt=1.0, description="coverage of the percentile intervals")
    seed: int = Field(0, description="seed of the bootstrap resampling")


@dataclass
class Aggregation:
    """The result of :func:`aggregate`.

    Attributes:
        groups: one row per non-empty group (benchmarks in the order given, ``residual`` last):
            ``name, weight, weight_ci`` ((lo, hi) or None without bootstrap), ``tokens,
            documents, mean_doc_tokens, density, floored, driven_by`` (list of dicts
            ``{benchmark, share, contribution}``).
        domains: the same columns less ``driven_by``, one row per domain label; None when the
            table has no ``domain`` column.
        membership: one row per document: ``doc_id, group, joint_score, n_tokens`` (and
            ``domain`` when present), in input order.
        alpha: α_b per benchmark (sums to 1).
        steps: s_(b) per benchmark as used for α.
        benchmarks: benchmark names in column order.
        config: the options used.
        notes: plain-language remarks (fallbacks, floored groups, benchmarks with no documents).
        weight_samples: [R, G] bootstrap weights in ``groups`` row order (None without bootstrap).
        domain_weight_samples: [R, D] the same for ``domains``.
        residual_moves: per residual rule that moved a document, ``{rule, documents, tokens,
            by_domain}`` (``by_domain``: label → documents; empty without labels).
    """

    groups: pd.DataFrame
    domains: pd.DataFrame | None
    membership: pd.DataFrame
    alpha: dict[str, float]
    steps: dict[str, float]
    benchmarks: list[str]
    config: AggregationConfig
    notes: list[str] = field(default_factory=list)
    weight_samples: np.ndarray | None = None
    domain_weight_samples: np.ndarray | None = None
    residual_moves: list[dict[str, Any]] = field(default_factory=list)

    @property
    def weights(self) -> dict[str, float]:
        """Group name → weight."""
        return {str(n): float(w) for n, w in zip(self.groups["name"], self.groups["weight"], strict=True)}

    @property
    def floored(self) -> list[str]:
        """Names of the groups whose weight was set by the floor, not by their density."""
        return [str(n) for n in self.groups.loc[self.groups["floored"], "name"]]


# --- step 4: α ----------------------------------------------------------------------------------


def _mean_step(bench: str, value: StepValue) -> float:
    if isinstance(value, int | float | np.integer | np.floating):
        vals = [float(value)]
    else:
        vals = [float(v) for v in value]
    if not vals or any(not np.isfinite(v) or v < 0 for v in vals):
        raise ConfigError(
            f"Artifact step(s) {value!r} of benchmark {bench!r} are not finite non-negative numbers",
            expected="the training step of the benchmark's artifact checkpoint (or a list of them)",
            fix="pass steps from the selection table (benchmark → step)",
        )
    return float(np.mean(vals))


def alpha_weights(
    steps: Mapping[str, float], mode: Literal["step", "uniform"] = "step"
) -> tuple[dict[str, float], list[str]]:
    """α_b of DESIGN §1 step 4, normalised to sum 1, and notes.

    ``step``: α_b = s_(b) / Σ s (paper); falls back to uniform when every step is 0.
    ``uniform``: α_b = 1/B.
    """
    names = list(steps)
    if not names:
        raise ConfigError("No benchmarks given", fix="pass at least one benchmark with its artifact step")
    notes: list[str] = []
    s = np.array([float(steps[b]) for b in names], dtype=np.float64)
    if mode == "step" and s.sum() > 0:
        a = s / s.sum()
        zero = [b for b, v in zip(names, s, strict=True) if v == 0]
        if zero:
            notes.append(f"alpha: benchmark(s) {zero} have artifact step 0, so α = 0 (no joint influence)")
    else:
        if mode == "step":
            notes.append("alpha: every artifact step is 0; fell back to uniform α")
        a = np.full(len(names), 1.0 / len(names))
    return {b: float(v) for b, v in zip(names, a, strict=True)}, notes


# --- step 6: weights from densities -------------------------------------------------------------


def floor_weights(
    density: np.ndarray, tokens: np.ndarray, min_weight: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights from densities with the floor rule of the module docstring, vectorised over rows.

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


# --- helpers -------------------------------------------------------------------------------------


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


# --- the public entry point ---------------------------------------------------------------------


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


def _move_record(rule: str, moved: np.ndarray, n: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    by_domain: dict[str, int] = {}
    if labels is not None:
        counts = pd.Series(labels[moved]).value_counts()
        by_domain = {str(d): int(c) for d, c in counts.items()}
    return {
        "rule": rule,
        "documents": int(moved.sum()),
        "tokens": int(n[moved].sum()),
        "by_domain": by_domain,
    }


_RULE_WORDS = {
    "all_negative": "negative for every benchmark",
    "negative_joint": "with joint influence below {t:g} (but positive for some benchmark)",
    "negative_domain": "of domains whose joint density is below {t:g}",
}


def _move_note(move: dict[str, Any], threshold: float) -> str:
    where = ""
    if move["by_domain"]:
        where = " from " + ", ".join(f"{d} {c}" for d, c in move["by_domain"].items())
    words = _RULE_WORDS[move["rule"]].format(t=threshold)
    return (
        f"residual ({move['rule']}): {move['documents']} documents ({move['tokens']:,} tokens) {words} "
        f"moved out of the weighted groups{where}"
    )


def _harmful_domains(
    dcodes: np.ndarray, kd: int, contrib: np.ndarray, n: np.ndarray, config: AggregationConfig
) -> np.ndarray:
    """[kd] bool: the domains whose joint density is below −scale × the median |ρ| (``relative``),
    or below the threshold (``negative``; ``confident``: the
    ``residual_level`` quantile of its bootstrap densities, over the same resamples as the weights'
    intervals; the density itself without bootstrap)."""
    rho = _densities(dcodes, contrib, n, kd)[0]
    if config.residual_domains == "relative":
        return np.asarray(rho < -config.residual_scale * float(np.median(np.abs(rho))))
    if config.residual_domains == "confident" and config.bootstrap > 0:
        boot = _bootstrap([(dcodes, kd)], contrib, n, config.bootstrap, config.seed)[0]
        rho = np.quantile(boot, config.residual_level, axis=0)
    return np.asarray(rho < config.residual_threshold)


def aggregate(
    scores: pd.DataFrame,
    steps: Mapping[str, StepValue],
    config: AggregationConfig | None = None,
    *,
    domain_column: str = "domain",
) -> Aggregation:
    """Groups, weights, intervals and per-domain weights from a scores table (DESIGN §1 steps 4-6).

    Args:
        scores: the scores table described in the module docstring.
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
    chosen steps (whose score columns are averaged into one per benchmark, see the module doc).
    """
    if not {"benchmark", "step"} <= set(selection.columns):
        raise ConfigError(
            "The selection table lacks columns benchmark and step",
            fix="pass the table returned by select_artifacts",
        )
    return {str(b): float(g["step"].mean()) for b, g in selection.groupby("benchmark", sort=True)}
