"""``automixer plan``: what a remix of a config will run and cost, before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from automixer.cli import (
    ConfigArgument,
    ConfigOption,
    JsonOption,
    command,
    config_path,
    console,
    emit_json,
    load_run_config,
)


def _hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else f"{h:.2f} h"


@command("plan")
def plan_cmd(
    config: ConfigArgument = None,
    store: Annotated[
        str | None, typer.Option(help="root URI of the artifact store (overrides the config)")
    ] = None,
    workers: Annotated[
        str, typer.Option(help="numbers of scoring (GPU) workers to estimate for")
    ] = "1,2,4,8",
    score_docs_per_s: Annotated[
        float | None,
        typer.Option(help="given scoring throughput per worker, documents/s (else measured here)"),
    ] = None,
    eval_s: Annotated[
        float | None,
        typer.Option(help="given seconds per evaluation (else the store's history, or measured here)"),
    ] = None,
    query_s: Annotated[
        float | None, typer.Option(help="given seconds per query vector (else measured here)")
    ] = None,
    config_option: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """What a remix of CONFIG would run (units missing from the store) and how long, per number of workers."""
    from tasks.cost import Throughput, estimate_cost, measure_throughput
    from tasks.plan import plan_remix

    cfg = load_run_config(cast(Path, config_path(config, config_option)), store)
    plan = plan_remix(cfg)
    counts = [int(w) for w in workers.split(",") if w.strip()]
    if score_docs_per_s and eval_s and query_s:
        names = [s.name for s in cfg.benchmarks.specs()]
        throughput = Throughput(
            {b: eval_s for b in names},
            1 / score_docs_per_s,
            query_s,
            {"eval": "given", "score": "given", "query": "given"},
        )
    else:
        from automixer_core.checkpoints import discover_checkpoints
        from tasks.checkpoints import checkpoint_records

        checkpoints = checkpoint_records(
            discover_checkpoints(cfg.checkpoints.uri, revision=cfg.checkpoints.revision)
        )
        if not as_json:
            console.print(
                f"measuring throughput on {checkpoints[-1]['name']} (a few documents and questions)…"
            )
        throughput = measure_throughput(cfg, checkpoints[-1])
        if score_docs_per_s:
            throughput.score_doc_s, throughput.source["score"] = 1 / score_docs_per_s, "given"
        if eval_s:
            throughput.eval_s = {b: eval_s for b in throughput.eval_s}
            throughput.source["eval"] = "given"
        if query_s:
            throughput.query_s, throughput.source["query"] = query_s, "given"
    cost = estimate_cost(plan, plan.documents / max(1, plan.shards), throughput, counts)
    if as_json:
        emit_json({"plan": plan.to_dict(), "cost": cost.to_dict()})
        return
    _print(plan.to_dict(), cost.to_dict())


def _docs_per_s(t: dict[str, Any]) -> str:
    """Scoring throughput; against one benchmark and against all when both were measured."""
    if t.get("score_doc_s_k1") and t.get("score_k", 0) > 1:
        return f"{1 / t['score_doc_s_k1']:.1f} docs/s (K=1) – {1 / t['score_doc_s']:.1f} (K={t['score_k']})"
    return f"{1 / t['score_doc_s']:.1f} docs/s"


def _print(plan: dict[str, Any], cost: dict[str, Any]) -> None:
    bound = (
        " (at most: the artifact checkpoints are chosen after the missing evaluations)"
        if cost["upper_bound"]
        else ""
    )
    t = cost["throughput"]
    table = Table(title=f"Remix cost on one worker{bound}")
    for col in ("phase", "units to run", "per unit", "hours on one worker", "throughput from"):
        table.add_column(col, justify="left" if col in ("phase", "throughput from") else "right")
    mean_eval = sum(t["eval_s"].values()) / max(1, len(t["eval_s"]))
    table.add_row(
        "evaluations",
        str(cost["evaluations"]),
        f"{mean_eval:.1f} s",
        _hours(cost["eval_hours"]),
        t["source"].get("eval", ""),
    )
    table.add_row(
        "query vectors",
        str(cost["queries"]),
        f"{t['query_s']:.1f} s",
        _hours(cost["query_hours"]),
        t["source"].get("query", ""),
    )
    table.add_row(
        "shard scorings",
        f"{cost['scorings']} ({cost['documents_to_score']:,} doc scorings)",
        _docs_per_s(t),
        _hours(cost["score_hours"]),
        t["source"].get("score", ""),
    )
    console.print(table)
    wall = Table(title="Wall time by scoring workers")
    wall.add_column("workers", justify="right")
    wall.add_column("hours", justify="right")
    for w, h in cost["hours_by_workers"].items():
        wall.add_row(str(w), _hours(h))
    console.print(wall)
    console.print(
        "Evaluations and query vectors run one after the other in the remix's process; shard scorings "
        "spread over the workers (work-pool or Dask mode)."
    )
    if plan["nothing_new"]:
        console.print(f"[cyan]Nothing new[/]: the remix would end at once (mixture {plan['latest_mixture']})")
