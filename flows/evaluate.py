"""Flow ``evaluate``: discover checkpoints → evaluate each on each benchmark → table, selection, plot."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from automixer_core.config import RunConfig
from flows.naming import run_name
from flows.progress import RunProgress
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
    progress = RunProgress("evaluate-progress", ["evaluate"], "evaluations done or found in the store")
    checkpoints = discover_task(config.checkpoints.uri, config.checkpoints.revision)
    specs = config.benchmarks.specs()
    results = evaluate_all(config, checkpoints, specs, progress)
    report = evaluation_report_task(config.store, [r["key"] for r in results], config.selection)
    return {**report, "computed": sum(r["computed"] for r in results), "pairs": len(results)}


def evaluate_all(
    config: RunConfig, checkpoints: list[dict[str, Any]], specs: list[Any], progress: RunProgress
) -> list[dict[str, Any]]:
    """Every (checkpoint, benchmark) evaluation, in that order, each one reported as it finishes."""
    pairs = [(c, s) for c in checkpoints for s in specs]
    progress.phase(
        "evaluate", len(pairs), "evaluations", f"{len(checkpoints)} checkpoints × {len(specs)} benchmarks"
    )
    futures = [evaluate_task.submit(config.store, c, s, config.evaluation) for c, s in pairs]
    results = []
    for f in futures:
        results.append(f.result())
        progress.advance("evaluate")
    computed = sum(r["computed"] for r in results)
    progress.end("evaluate", f"{computed} computed, {len(results) - computed} from the store")
    return results
