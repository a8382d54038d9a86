"""Artifact-model selection (DESIGN §1 step 2).

For each benchmark b, θ_(b) = the checkpoint where b's score peaked (paper). Ours: the metric is
``acc_norm`` by default, ties go to the later step, ``top_k`` keeps the k best, and the ablations
``final`` (last checkpoint only) and ``all`` (every checkpoint) are available.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from automixer_core.errors import CheckpointError, ConfigError

Strategy = Literal["best", "top_k", "final", "all", "emergence"]
EVAL_COLUMNS = ("checkpoint", "step", "benchmark")


class SelectionConfig(BaseModel):
    """How artifact models are chosen."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field(
        "best",
        description="best (paper) | top_k | final | all (the paper's ablations) | emergence (ours: the "
        "checkpoint after the largest rise of the metric, where the capability was being learned)",
    )
    metric: Literal["acc", "acc_norm", "gold_ll"] = Field(
        "acc_norm",
        description="score used to rank checkpoints: acc | acc_norm (paper) | gold_ll (the gold answer's "
        "log-likelihood per character, which separates checkpoints long before accuracy leaves chance)",
    )
    top_k: int = Field(1, ge=1, description="checkpoints kept per benchmark with strategy top_k")


def select_artifacts(evals: pd.DataFrame, config: SelectionConfig | None = None) -> pd.DataFrame:
    """Choose the artifact checkpoint(s) of every benchmark.

    Args:
        evals: one row per (checkpoint, benchmark) with columns ``checkpoint``, ``step``,
            ``benchmark`` and the metric column.
        config: selection options.

    Returns:
        One row per (benchmark, chosen checkpoint): ``benchmark, checkpoint, step, metric, score,
        rank, within_noise, reason`` — ``reason`` says in words why this checkpoint was chosen;
        ``within_noise`` is true when another checkpoint scores within one standard error of it
        (the table needs a ``<metric>_stderr`` column for that).
    """
    config = config or SelectionConfig()
    missing = [c for c in (*EVAL_COLUMNS, config.metric) if c not in evals.columns]
    if missing:
        raise ConfigError(
            f"The evaluation table lacks column(s) {missing}",
            expected=f"columns {[*EVAL_COLUMNS, config.metric]}",
            fix="pass the table written by `automixer evaluate` (evals.parquet)",
        )
    if evals.empty:
        raise ConfigError("The evaluation table is empty", fix="evaluate at least one checkpoint first")
    rows: list[dict[str, object]] = []
    diverged = _diverged_mask(evals, config.metric)
    excluded = evals[diverged]
    evals = evals[~diverged]
    if evals.empty:
        raise CheckpointError(
            f"Every checkpoint diverged ({_diverged_words(excluded)})",
            expected="at least one checkpoint with finite weights and a finite benchmark loss",
            fix="point checkpoints.uri at a run that trained, or drop the diverged checkpoints with checkpoints.revision",
        )
    last_step = int(evals["step"].max())
    for bench, group in evals.groupby("benchmark", sort=True):
        # Rank: higher score first, then later step first (ties go to the later step).
        ranked = group.sort_values([config.metric, "step"], ascending=[False, False]).reset_index(drop=True)
        best_score = float(ranked[config.metric].iloc[0])
        n = len(ranked)
        if config.strategy == "best":
            chosen = ranked.iloc[:1]
        elif config.strategy == "top_k":
            chosen = ranked.iloc[: config.top_k]
        elif config.strategy == "final":
            chosen = group[group["step"] == last_step]
        elif config.strategy == "emergence":
            chosen, rise_note = _emergence(group, config.metric)
        else:
            chosen = group.sort_values("step")
        for _, r in chosen.iterrows():
            score = float(r[config.metric])
            rank = int((ranked[config.metric] > score).sum()) + 1
            ties = int((ranked[config.metric] == score).sum())
            if config.strategy == "final":
                reason = f"final checkpoint (ablation); {config.metric}={score:.4f}, rank {rank}/{n}"
            elif config.strategy == "all":
                reason = f"every checkpoint (ablation); {config.metric}={score:.4f}, rank {rank}/{n}"
            elif config.strategy == "emergence":
                reason = f"{rise_note}; {config.metric}={score:.4f}, rank {rank}/{n}"
            else:
                reason = f"{config.metric}={score:.4f} is rank {rank} of {n} checkpoints"
                if score == best_score:
                    reason = f"best {config.metric}={score:.4f} of {n} checkpoints"
                if ties > 1:
                    reason += f"; tied with {ties - 1} other(s), later step preferred"
            gone = excluded[excluded["benchmark"] == bench]
            if len(gone):
                reason += f"; excluded as diverged: {_diverged_words(gone)}"
            near = _within_noise(ranked, config.metric, r)
            if near:
                reason += (
                    f"; within one standard error (±{float(r[f'{config.metric}_stderr']):.4f}) of {near} "
                    "other checkpoint(s): the choice is at noise level"
                )
            rows.append(
                {
                    "benchmark": bench,
                    "checkpoint": r["checkpoint"],
                    "step": int(r["step"]),
                    "metric": config.metric,
                    "score": score,
                    "rank": rank,
                    "within_noise": bool(near),
                    "reason": reason,
                }
            )
    return pd.DataFrame(
        rows, columns=["benchmark", "checkpoint", "step", "metric", "score", "rank", "within_noise", "reason"]
    )


def _within_noise(ranked: pd.DataFrame, metric: str, row: pd.Series) -> int:
    """How many other checkpoints score within one standard error of ``row`` (0 without a
    ``<metric>_stderr`` column or a finite stderr)."""
    col = f"{metric}_stderr"
    if col not in ranked.columns:
        return 0
    se = float(row[col])
    if math.isnan(se) or se <= 0:
        return 0
    others = ranked[ranked["checkpoint"] != row["checkpoint"]]
    return int(((others[metric] - float(row[metric])).abs() <= se).sum())


def _diverged_mask(evals: pd.DataFrame, metric: str) -> pd.Series:
    """Rows of a diverged checkpoint: flagged ``diverged`` by the evaluation, or a non-finite metric."""
    flagged = evals["diverged"].fillna(False).astype(bool) if "diverged" in evals.columns else False
    values = pd.to_numeric(evals[metric], errors="coerce").to_numpy(dtype=float)
    return flagged | ~pd.Series(np.isfinite(values), index=evals.index)


def _diverged_words(rows: pd.DataFrame) -> str:
    reasons = (
        rows["diverged_reason"] if "diverged_reason" in rows.columns else pd.Series("", index=rows.index)
    )
    seen: dict[str, str] = {}
    for name, why in zip(rows["checkpoint"], reasons, strict=True):
        seen.setdefault(str(name), str(why) if isinstance(why, str) and why else "a non-finite score")
    return ", ".join(f"{n} ({w})" for n, w in seen.items())


def _emergence(group: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, str]:
    """The checkpoint that ends the largest rise of ``metric`` between consecutive checkpoints (the
    later on ties); a lone checkpoint is its own. Returns it and the rise in words."""
    by_step = group.sort_values("step").reset_index(drop=True)
    if len(by_step) < 2:
        return by_step.iloc[:1], "the only checkpoint"
    rises = by_step[metric].diff().to_numpy()[1:]
    i = int(len(rises) - 1 - rises[::-1].argmax()) + 1  # the last of the largest rises
    prev, cur = by_step.iloc[i - 1], by_step.iloc[i]
    note = (
        f"largest rise of {metric}: {float(cur[metric]) - float(prev[metric]):+.4f} from step "
        f"{int(prev['step'])} to {int(cur['step'])}"
    )
    return by_step.iloc[[i]], note
