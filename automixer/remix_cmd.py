"""``automixer remix`` (the whole method, publishing a mixture) and ``automixer export`` (a published
mixture again in a trainer's format)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from automixer.cli import (
    ConfigArgument,
    ConfigOption,
    JsonOption,
    _fail,
    _run,
    command,
    config_path,
    console,
    emit_json,
    load_run_config,
)


def _remix(config: Any, *, as_json: bool = False) -> dict[str, Any]:
    """Run the remix flow and print the mixture and what ran (or, ``as_json``, emit the flow's result)."""
    from automixer.runtime import configured_api_url
    from automixer_core.errors import ConfigError
    from flows.remix import remix_flow

    if config.execution.mode == "workpool" and not configured_api_url():
        _fail(
            ConfigError(
                "execution.mode is 'workpool' but PREFECT_API_URL is not set: this command would start "
                "a private ephemeral Prefect API that no worker polls, and wait forever",
                fix="export PREFECT_API_URL=http://<server>:4200/api (the server your GPU workers poll), "
                "or set execution.mode to local or dask",
            )
        )

    def show(kind: str, payload: dict[str, Any]) -> None:
        if kind == "evaluation" and not as_json:  # the table and the choices as soon as they exist
            from automixer.evaluate_cmd import evaluation_frames, print_evaluation

            metric = config.selection.metric
            print_evaluation(*evaluation_frames(config.store, payload, metric), metric)

    t0 = time.perf_counter()
    out = _run(remix_flow, config, quiet=as_json, on_show=show)
    if as_json:
        emit_json(out)
        return out
    _print_mixture(out)
    if out.get("nothing_new"):
        console.print(
            f"[cyan]Nothing new[/]: same checkpoints, benchmarks, corpus and config as mixture {out['id']}; "
            f"nothing was evaluated or scored ({time.perf_counter() - t0:.0f}s)"
        )
        return out
    counts = out["counts"]
    console.print(
        f"ran {counts['evaluations']} evaluations, {counts['queries']} query-vector builds and "
        f"{counts['shards_scored']} shard scorings (everything else came from the store) in {time.perf_counter() - t0:.0f}s"
    )
    if out["ran"] and len(out["ran"]) <= 40:
        console.print("work done: " + "; ".join(out["ran"]))
    return out


def _print_mixture(out: dict[str, Any]) -> None:
    from automixer_core.mixture import Mixture
    from automixer_core.store import Store

    uri = out["uri"]
    root, _, name = uri.rpartition("/")
    mixture = Mixture.from_json(Store(root).read_text(name))
    table = Table(title=f"Mixture {mixture.id}")
    for col in ("group", "weight", "90% interval", "tokens", "docs", "driven by"):
        table.add_column(col, justify="left" if col in ("group", "driven by") else "right")
    for g in mixture.groups:
        ci = f"[{g.weight_ci[0]:.3f}, {g.weight_ci[1]:.3f}]" if g.weight_ci else "-"
        drivers = ", ".join(f"{d.benchmark} {d.share:.0%}" for d in g.driven_by[:3])
        table.add_row(g.name, f"{g.weight:.3f}", ci, f"{g.tokens:,}", f"{g.documents:,}", drivers)
    console.print(table)
    if mixture.domains:
        dom = Table(title="Per-domain weights (same density rule)")
        for col in ("domain", "weight", "tokens"):
            dom.add_column(col)
        for d in mixture.domains:
            dom.add_row(d.name, f"{d.weight:.3f}", f"{d.tokens:,}")
        console.print(dom)
    for note in mixture.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"mixture: {uri}")
    console.print(f"report:  {root}/report.html")


@command("remix")
def remix_cmd(
    config: ConfigArgument = None,
    store: Annotated[
        str | None, typer.Option(help="root URI of the artifact store (overrides the config)")
    ] = None,
    config_option: ConfigOption = None,
    as_json: JsonOption = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="say what would run (evaluations, query vectors, shard scorings missing from the store) "
            "and compute nothing",
        ),
    ] = False,
) -> None:
    """The whole method: evaluate, select, score the corpus, aggregate, publish a mixture."""
    cfg = load_run_config(cast(Path, config_path(config, config_option)), store)
    if dry_run:
        _dry_run(cfg, as_json=as_json)
        return
    _remix(cfg, as_json=as_json)


def _dry_run(config: Any, *, as_json: bool = False) -> dict[str, Any]:
    """Print (or emit as JSON) what a remix of ``config`` would run now (:func:`tasks.plan.plan_remix`)."""
    from tasks.plan import plan_remix

    plan = plan_remix(config).to_dict()
    if as_json:
        emit_json(plan)
        return plan
    console.print(
        f"Inputs: {plan['checkpoints']} checkpoints, {plan['benchmarks']} benchmarks, {plan['shards']} shards "
        f"({plan['documents']:,} documents); store {config.store}"
    )
    table = Table(title="What `automixer remix` would run now (dry run: nothing computed)")
    for col in ("unit", "to run", "of", "in the store"):
        table.add_column(col, justify="left" if col == "unit" else "right")
    bound = "" if plan["selection_known"] else " (at most)"
    rows = [
        ("evaluations (checkpoint × benchmark)", len(plan["evaluations_missing"]), plan["evaluations_total"]),
        (
            f"query vectors (benchmark @ artifact checkpoint){bound}",
            len(plan["queries_missing"]),
            plan["queries_total"],
        ),
        (
            f"shard scorings (artifact checkpoint × shard){bound}",
            plan["scorings_missing"],
            plan["scorings_total"],
        ),
    ]
    for name, todo, total in rows:
        table.add_row(
            name,
            str(todo),
            str(total),
            str(total - todo) if plan["selection_known"] or name.startswith("eval") else "?",
        )
    console.print(table)
    for label, items in (
        ("evaluations", plan["evaluations_missing"]),
        ("query vectors", plan["queries_missing"]),
    ):
        if items:
            shown = ", ".join(items[:12]) + (f", … ({len(items) - 12} more)" if len(items) > 12 else "")
            console.print(f"{label} to run: {shown}", highlight=False)
    for name, n in plan["scorings_missing_by_checkpoint"].items():
        if n:
            console.print(f"shard scorings to run @ {name}: {n} of {plan['shards']}")
    for note in plan["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if plan["nothing_new"]:
        console.print(f"[cyan]Nothing new[/]: the remix would end at once (mixture {plan['latest_mixture']})")
    elif not (plan["evaluations_missing"] or plan["queries_missing"] or plan["scorings_missing"]):
        console.print("Every unit is in the store: the remix would only aggregate and publish.")
    return plan


@command("export")
def export_cmd(
    mixture: Annotated[str, typer.Argument(help="a mixture.json (path or URI)")],
    format: Annotated[
        str,
        typer.Option("--format", help="hf_interleave | megatron | gpt_neox | mosaic_streaming | olmo_core"),
    ],
    out: Annotated[Path | None, typer.Option(help="file to write (default: print)")] = None,
) -> None:
    """Write a published mixture again in a trainer's format."""
    from automixer_core.exports import write_export
    from automixer_core.published import read_published_mixture

    doc = read_published_mixture(mixture)
    filename, content = write_export(doc, format)
    if out:
        out.write_bytes(content)
        console.print(f"wrote {out} ({filename})")
    else:
        sys.stdout.write(content.decode())
