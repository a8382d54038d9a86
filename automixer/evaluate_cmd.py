"""``automixer evaluate``: every checkpoint on every benchmark, the table, and the artifact models."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from automixer.cli import (
    DEFAULT_DATA,
    ConfigArgument,
    ConfigOption,
    JsonOption,
    _fail,
    _print_frame,
    _run,
    command,
    config_path,
    console,
    emit_json,
)


def _evaluate(config: Any, *, as_json: bool = False) -> dict[str, Any]:
    """Run the evaluation flow; print its table and selection (or, ``as_json``, emit them as JSON:
    the flow's report plus ``metric`` and ``table``, one record per checkpoint)."""
    from flows.evaluate import evaluate_flow

    t0 = time.perf_counter()
    report = _run(evaluate_flow, config, quiet=as_json)
    table, chosen = evaluation_frames(config.store, report, config.selection.metric)
    if as_json:
        emit_json(
            {
                **report,
                "metric": config.selection.metric,
                "table": table.reset_index().to_dict(orient="records"),
            }
        )
        return report
    print_evaluation(table, chosen, config.selection.metric)
    console.print(
        f"{report['computed']} of {report['pairs']} (checkpoint, benchmark) evaluations computed, the rest read "
        f"from the store; {time.perf_counter() - t0:.0f}s"
    )
    for name, uri in report["uris"].items():
        console.print(f"  {name}: {uri}")
    return report


def evaluation_frames(store_uri: str, report: dict[str, Any], metric: str) -> tuple[Any, Any]:
    """The evaluation report's wide table (checkpoints × benchmarks of ``metric``) and its
    artifact choices, read back from the store."""
    import io

    import pandas as pd

    from automixer_core.store import Store
    from tasks.reports import wide_table

    store = Store(store_uri)
    evals = pd.read_parquet(io.BytesIO(store.read_bytes(report["keys"]["evals.parquet"])))
    chosen = pd.read_csv(io.BytesIO(store.read_bytes(report["keys"]["selection.csv"])))
    return wide_table(evals, metric), chosen


def print_evaluation(table: Any, chosen: Any, metric: str) -> None:
    """Print the evaluation table and the artifact model of each benchmark with the reason."""
    _print_frame(table, f"{metric} by checkpoint (rows) and benchmark (columns)")
    _print_frame(chosen[["benchmark", "checkpoint", "step", "score", "reason"]], "Artifact models")


@command("evaluate")
def evaluate_cmd(
    config_argument: ConfigArgument = None,
    checkpoints: Annotated[
        str | None, typer.Option(help="folder, s3:// prefix or hf://org/repo of checkpoints")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="folder holding benchmarks/<name>/<split>.jsonl")] = None,
    config: ConfigOption = None,
    benchmarks: Annotated[str | None, typer.Option(help="comma-separated benchmark names")] = None,
    limit: Annotated[int | None, typer.Option(help="evaluation rows per benchmark (seeded sample)")] = None,
    store: Annotated[str | None, typer.Option(help="root URI of the artifact store")] = None,
    metric: Annotated[str | None, typer.Option(help="acc or acc_norm, for selection")] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate every checkpoint on every benchmark; print the table, choose artifact models, plot."""
    from automixer_core.config import RunConfig, load_config, parse_config

    config = config_path(config_argument, config, required=False)
    base: dict[str, Any] = load_config(config).model_dump(mode="json") if config else {}
    if checkpoints:
        base.setdefault("checkpoints", {})["uri"] = checkpoints
    bench = base.setdefault("benchmarks", {})
    if data:
        bench["data_dir"] = str(data)
    elif "data_dir" not in bench and DEFAULT_DATA.is_dir():
        bench["data_dir"] = str(DEFAULT_DATA)
    if benchmarks:
        bench["names"] = [b.strip() for b in benchmarks.split(",") if b.strip()]
    if limit:
        bench["eval_limit"] = limit
    if store:
        base["store"] = store
    if metric:
        base.setdefault("selection", {})["metric"] = metric
    if "checkpoints" not in base:
        _fail(
            ValueError(
                "give a run config with a checkpoints section (automixer evaluate run.yaml), or --checkpoints URI"
            )
        )
    cfg: RunConfig = parse_config(base, RunConfig, source="command line")
    _evaluate(cfg, as_json=as_json)
