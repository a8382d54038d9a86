"""Flow ``evaluate``: discover checkpoints → evaluate each on each benchmark → table, selection, plot."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from automixer_core.config import RunConfig
from flows.naming import run_name
from tasks.checkpoints import discover_task
from tasks.evaluate import evaluate_task
from tasks.reports import evaluation_report_task


@flow(
    name="evaluate",
    flow_run_name=run_name("evaluate"),
    task_runner=ThreadPoolTaskRunner(max_workers=1),  # type: ignore[arg-type]
)
def evaluate_flow(config: RunConfig) -> dict[str, Any]:
    """Evaluate every checkpoint on every benchmark (cached per pair in the store) and report.

    Returns the report's URIs plus ``computed``: how many (checkpoint, benchmark) pairs ran a model.
    """
    checkpoints = discover_task(config.checkpoints.uri, config.checkpoints.revision)
    specs = config.benchmarks.specs()
    futures = [
        evaluate_task.submit(config.store, ckpt, spec, config.evaluation)
        for ckpt in checkpoints
        for spec in specs
    ]
    results = [f.result() for f in futures]
    report = evaluation_report_task(config.store, [r["key"] for r in results], config.selection)
    return {**report, "computed": sum(r["computed"] for r in results), "pairs": len(results)}
