"""The capability section: each benchmark's score over training, the artifact checkpoint chosen,
and whether that choice stands above noise."""

from __future__ import annotations

import math
import re

import pandas as pd

from automixer_core.plots import CHANCE_METRICS, REPORT_DPI, capability_emergence, chance_levels, noise_flags
from automixer_core.report.common import esc, img, note_sentence, table

INTRO = (
    "Every checkpoint of the training run was evaluated on every benchmark. For each benchmark the "
    "mixture uses the influence of the artifact checkpoint (★). Band: ±1 standard error over the "
    "benchmark's questions; dashed line: chance (the mean over questions of 1 / number of answer "
    "choices). A benchmark marked (within noise) has an artifact checkpoint whose score is within one "
    "standard error of chance or of another checkpoint: its choice, and the influence scores that rest "
    "on it, carry little signal."
)


def score_text(value: float, metric: str, stderr: float | None = None) -> str:
    """A metric value with its unit: accuracies as ``"41.2% ± 2.1 pp"``, ``gold_ll`` in nats/char."""
    if not math.isfinite(value):
        return "–"
    if metric in CHANCE_METRICS:
        se = f" ± {100 * stderr:.1f} pp" if stderr is not None and math.isfinite(stderr) else ""
        return f"{100 * value:.1f}%{se}"
    se = f" ± {stderr:.3f}" if stderr is not None and math.isfinite(stderr) else ""
    return f"{value:.3f}{se} nats/char"


def short_reason(reason: str, flags: list[str] | None = None) -> str:
    """A selection ``reason`` as one short sentence: its first clause without the number, which the
    score column shows with its unit (``best acc_norm=0.4123 of 6 checkpoints`` → ``Best acc_norm of
    6 checkpoints.``), whether diverged checkpoints were excluded, and the noise ``flags``."""
    clauses = [c.strip() for c in str(reason).split(";") if c.strip()]
    words = re.sub(r"=[-+0-9.eE]+", "", clauses[0]) if clauses else "chosen by the selection rule"
    if any(c.startswith("excluded as diverged") for c in clauses):
        words += ", diverged checkpoints excluded"
    if flags:
        words += "; within noise (" + ", ".join(flags) + ")"
    return note_sentence(words)


def selection_table(evals: pd.DataFrame | None, selection: pd.DataFrame, metric: str) -> str:
    """One row per artifact choice: benchmark, checkpoint, step, score ± s.e., chance, questions,
    why, and the noise verdict (cells escaped)."""
    flags = noise_flags(evals, selection, metric) if evals is not None else {}
    chance = chance_levels(evals) if evals is not None and metric in CHANCE_METRICS else {}
    se_col = f"{metric}_stderr"
    body = []
    for _, r in selection.iterrows():
        bench = str(r["benchmark"])
        row = None
        if evals is not None:
            at = evals[(evals["benchmark"] == r["benchmark"]) & (evals["step"] == r["step"])]
            row = at.iloc[0] if len(at) else None
        se = float(row[se_col]) if row is not None and se_col in row.index else None
        n = int(row["n"]) if row is not None and "n" in row.index and pd.notna(row["n"]) else None
        f = flags.get(bench, [])
        body.append(
            [
                esc(bench),
                esc(r["checkpoint"]),
                f"{int(r['step']):,}",
                esc(score_text(float(r["score"]), metric, se)),
                esc(score_text(chance[bench], metric)) if bench in chance else "–",
                f"{n:,}" if n is not None else "–",
                esc(short_reason(str(r.get("reason", "")), None)),
                f"<span class='warn'>within noise: {esc(', '.join(f))}</span>"
                if f
                else "<span class='ok'>yes</span>",
            ]
        )
    return table(
        [
            "benchmark",
            "artifact checkpoint",
            "training step",
            f"{metric} ± 1 s.e.",
            "chance",
            "questions",
            "why this checkpoint",
            "above noise?",
        ],
        body,
        text_columns=(1, 6),
    )


def capability_section(
    evals: pd.DataFrame | None,
    selection: pd.DataFrame | None,
    metric: str,
    png: bytes | None = None,
    *,
    dpi: int = REPORT_DPI,
) -> str:
    """The section ("" when there is neither a table nor a figure). With ``evals`` the figure is
    drawn here (:func:`automixer_core.plots.capability_emergence`); else ``png`` is shown as given."""
    if evals is not None and not evals.empty and metric in evals.columns:
        png = capability_emergence(evals, selection, metric=metric, dpi=dpi)
    else:
        evals = None
    if png is None and selection is None:
        return ""
    parts = [
        "<h2 id='capability'>Capabilities over training and the artifact checkpoints</h2>",
        f"<p>{esc(INTRO)}</p>",
    ]
    if evals is not None and metric in CHANCE_METRICS and not chance_levels(evals):
        parts.append(
            "<p class='muted'>No chance level is drawn: the evaluation table has no chance column.</p>"
        )
    if png is not None:
        parts.append(img(png, "capability emergence"))
    if selection is not None and not selection.empty:
        parts.append(selection_table(evals, selection, metric))
    return "\n".join(parts)
