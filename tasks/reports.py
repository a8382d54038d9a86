"""The checkpoint × benchmark table, artifact selection and the capability plot, as one task; and
the helpers the Prefect artifacts of the evaluation and of a mixture share (markdown tables,
small data-URI images, numbers as strings with units)."""

from __future__ import annotations

import base64
import hashlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from automixer_core.evaluation import gold_loglikelihoods, mean_stderr
from automixer_core.plots import ARTIFACT_DPI, capability_emergence, noise_flags
from automixer_core.report.capability import score_text, short_reason
from automixer_core.selection import SelectionConfig, select_artifacts
from automixer_core.store import Store
from tasks.keys import examples_key, report_key

SUMMARY_COLUMNS = [
    "checkpoint",
    "step",
    "benchmark",
    "acc",
    "acc_norm",
    "acc_stderr",
    "acc_norm_stderr",
    "n",
    "chance",
]
#: A data-URI image larger than this (bytes of PNG) is left out of a markdown artifact.
MAX_ARTIFACT_IMAGE_BYTES = 150_000


def chance_level(per_example: pd.DataFrame) -> float:
    """Chance accuracy of a set of questions: the mean over questions of 1 / number of choices
    (from the per-question table's ``choice_lengths``, one entry per choice); NaN when empty."""
    counts = [len(c) for c in per_example["choice_lengths"]] if "choice_lengths" in per_example else []
    return float(np.mean([1.0 / c for c in counts if c > 0])) if counts else math.nan


def evaluation_table(store: Store, keys: list[str]) -> pd.DataFrame:
    """Long table, one row per (checkpoint, benchmark), from the evaluation summaries, with a
    ``chance`` column per benchmark (:func:`chance_level` of the first evaluation of it whose
    per-question table exists; every checkpoint answers the same questions)."""
    rows = [store.read_json(k) for k in keys]
    chance: dict[str, float] = {}
    for key, row in zip(keys, rows, strict=True):
        bench = str(row.get("benchmark"))
        needs_gold = "gold_ll" not in row  # summaries written before gold_ll existed: from their questions
        if not needs_gold and bench in chance:
            continue
        ex_key = examples_key(key)
        if not store.exists(ex_key):  # a diverged checkpoint has no questions table
            continue
        per_example = pd.read_parquet(io.BytesIO(store.read_bytes(ex_key)))
        if needs_gold:
            gold = gold_loglikelihoods(per_example)
            row["gold_ll"], row["gold_ll_stderr"] = float(np.mean(gold)), mean_stderr(gold)
        chance.setdefault(bench, chance_level(per_example))
    df = pd.DataFrame(rows)
    df["chance"] = [chance.get(str(b), math.nan) for b in df["benchmark"]]
    return df.sort_values(["step", "benchmark"]).reset_index(drop=True)


def wide_table(evals: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Checkpoints as rows (by step), benchmarks as columns, plus their mean."""
    wide = evals.pivot_table(index="step", columns="benchmark", values=metric).sort_index()
    wide["mean"] = wide.mean(axis=1)
    return wide


# --- artifact helpers ---------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; ``|`` and line breaks inside cells are escaped."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_image(png: bytes, alt: str, where: str | None = None) -> str:
    """``png`` as a markdown image with a data URI (Prefect's UI renders it), or, when larger than
    :data:`MAX_ARTIFACT_IMAGE_BYTES`, a sentence saying where the figure is."""
    if len(png) > MAX_ARTIFACT_IMAGE_BYTES:
        return f"*The {alt} figure is too large to show here" + (f"; it is in {where}*" if where else "*")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def selection_markdown(evals: pd.DataFrame, chosen: pd.DataFrame, metric: str) -> str:
    """The artifact choices as a markdown table: score ± s.e. and chance with units, a short
    reason sentence and the noise verdict."""
    flags = noise_flags(evals, chosen, metric)
    se_col = f"{metric}_stderr"
    rows = []
    for _, r in chosen.iterrows():
        at = evals[(evals["benchmark"] == r["benchmark"]) & (evals["step"] == r["step"])]
        se = float(at[se_col].iloc[0]) if len(at) and se_col in at.columns else None
        ch = float(at["chance"].iloc[0]) if len(at) and "chance" in at.columns else math.nan
        f = flags.get(str(r["benchmark"]), [])
        rows.append(
            [
                r["benchmark"],
                r["checkpoint"],
                f"{int(r['step']):,}",
                score_text(float(r["score"]), metric, se),
                score_text(ch, metric) if metric in ("acc", "acc_norm") else "–",
                short_reason(str(r.get("reason", ""))),
                "within noise: " + ", ".join(f) if f else "yes",
            ]
        )
    return markdown_table(
        ["benchmark", "checkpoint", "step", f"{metric} ± 1 s.e.", "chance", "why", "above noise?"], rows
    )


@task(name="evaluation-report", cache_policy=NO_CACHE)
def evaluation_report_task(store_uri: str, keys: list[str], selection: SelectionConfig) -> dict[str, Any]:
    """Write evals.csv/.parquet, selection.csv and capability.png under a key named by the inputs."""
    store = Store(store_uri)
    run_digest = hashlib.sha256(("\n".join(sorted(keys)) + selection.model_dump_json()).encode()).hexdigest()[
        :12
    ]
    evals = evaluation_table(store, keys)
    chosen = select_artifacts(evals, selection)
    outputs = {
        name: report_key(run_digest, name)
        for name in ("evals.parquet", "evals.csv", "selection.csv", "capability.png")
    }
    buf = io.BytesIO()
    evals.to_parquet(buf, index=False)
    store.write_bytes(outputs["evals.parquet"], buf.getvalue())
    store.write_text(outputs["evals.csv"], evals.to_csv(index=False))
    store.write_text(outputs["selection.csv"], chosen.to_csv(index=False))
    store.write_bytes(outputs["capability.png"], capability_emergence(evals, chosen, metric=selection.metric))
    wide = wide_table(evals, selection.metric)
    create_table_artifact(
        key="evaluation-table",
        table=[
            {
                "step": f"{int(step):,}",
                **{str(b): score_text(float(v), selection.metric) for b, v in row.items()},
            }
            for step, row in zip(wide.index.to_numpy(), wide.to_dict("records"), strict=True)
        ],
        description=f"{selection.metric} of every checkpoint (row, by training step) on every benchmark",
    )
    small = capability_emergence(evals, chosen, metric=selection.metric, dpi=ARTIFACT_DPI)
    create_markdown_artifact(
        key="artifact-selection",
        markdown="## Artifact models\n\nThe checkpoint whose influence each benchmark uses, and why. "
        "*Within noise*: its score is within one standard error of chance or of another checkpoint.\n\n"
        + selection_markdown(evals, chosen, selection.metric)
        + "\n\n"
        + markdown_image(small, "capability", store.uri(outputs["capability.png"])),
        description="the checkpoint chosen for each benchmark, and why",
    )
    return {
        "run_digest": run_digest,
        "selection": chosen.to_dict(orient="records"),
        "keys": outputs,
        "uris": {k: store.uri(v) for k, v in outputs.items()},
    }
