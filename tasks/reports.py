"""The checkpoint × benchmark table, artifact selection and the capability plot, as one task."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from automixer_core.evaluation import gold_loglikelihoods, mean_stderr
from automixer_core.plots import capability_emergence
from automixer_core.selection import SelectionConfig, select_artifacts
from automixer_core.store import Store
from tasks.keys import examples_key, report_key

SUMMARY_COLUMNS = ["checkpoint", "step", "benchmark", "acc", "acc_norm", "acc_stderr", "acc_norm_stderr", "n"]


def evaluation_table(store: Store, keys: list[str]) -> pd.DataFrame:
    """Long table, one row per (checkpoint, benchmark), from the evaluation summaries."""
    rows = [store.read_json(k) for k in keys]
    for key, row in zip(keys, rows, strict=True):
        if "gold_ll" not in row:  # summaries written before gold_ll existed: from their questions
            gold = gold_loglikelihoods(pd.read_parquet(io.BytesIO(store.read_bytes(examples_key(key)))))
            row["gold_ll"], row["gold_ll_stderr"] = float(np.mean(gold)), mean_stderr(gold)
    df = pd.DataFrame(rows)
    return df.sort_values(["step", "benchmark"]).reset_index(drop=True)


def wide_table(evals: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Checkpoints as rows (by step), benchmarks as columns, plus their mean."""
    wide = evals.pivot_table(index="step", columns="benchmark", values=metric).sort_index()
    wide["mean"] = wide.mean(axis=1)
    return wide


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
            {str(k): v for k, v in r.items()} for r in wide.reset_index().round(4).to_dict(orient="records")
        ],
        description=f"{selection.metric} of every checkpoint on every benchmark",
    )
    create_markdown_artifact(
        key="artifact-selection",
        markdown="## Artifact models\n\n" + chosen.to_markdown(index=False),
        description="the checkpoint chosen for each benchmark, and why",
    )
    return {
        "run_digest": run_digest,
        "selection": chosen.to_dict(orient="records"),
        "keys": outputs,
        "uris": {k: store.uri(v) for k, v in outputs.items()},
    }
