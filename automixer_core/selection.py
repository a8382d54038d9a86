"""Artifact-model selection (DESIGN §1 step 2).

For each benchmark b, θ_(b) = the checkpoint where b's score peaked (paper). Ours: the metric is
``acc_norm`` by default, ties go to the later step, ``top_k`` keeps the k best, and the ablations
``final`` (last checkpoint only) and ``all`` (every checkpoint) are available.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from automixer_core.errors import ConfigError

Strategy = Literal["best", "top_k", "final", "all"]
EVAL_COLUMNS = ("checkpoint", "step", "benchmark")


class SelectionConfig(BaseModel):
    """How artifact models are chosen."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field("best", description="best | top_k | final | all (the last two are ablations)")
    metric: Literal["acc", "acc_norm"] = Field("acc_norm", description="score used to rank checkpoints")
    top_k: int = Field(1, ge=1, description="checkpoints kept per benchmark with strategy top_k")


def select_artifacts(evals: pd.DataFrame, config: SelectionConfig | None = None) -> pd.DataFrame:
    """Choose the artifact checkpoint(s) of every benchmark.

    Args:
        evals: one row per (checkpoint, benchmark) with columns ``checkpoint``, ``step``,
            ``benchmark`` and the metric column.
        config: selection options.

    Returns:
        One row per (benchmark, chosen checkpoint): ``benchmark, checkpoint, step, metric, score,
        rank, reason`` — ``reason`` says in words why this checkpoint was chosen.
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
            else:
                reason = f"{config.metric}={score:.4f} is rank {rank} of {n} checkpoints"
                if score == best_score:
                    reason = f"best {config.metric}={score:.4f} of {n} checkpoints"
                if ties > 1:
                    reason += f"; tied with {ties - 1} other(s), later step preferred"
            rows.append(
                {
                    "benchmark": bench,
                    "checkpoint": r["checkpoint"],
                    "step": int(r["step"]),
                    "metric": config.metric,
                    "score": score,
                    "rank": rank,
                    "reason": reason,
                }
            )
    return pd.DataFrame(
        rows, columns=["benchmark", "checkpoint", "step", "metric", "score", "rank", "reason"]
    )
