"""``automixer remix`` (the whole method, publishing a mixture) and ``automixer export`` (a published
mixture again in a trainer's format)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from automixer.cli import JsonOption, _fail, _run, command, console, emit_json, load_run_config


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

    t0 = time.perf_counter()
    out = _run(remix_flow, config, quiet=as_json)
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
    config: Annotated[Path, typer.Argument(help="run config YAML (see configs/example.yaml)")],
    store: Annotated[
        str | None, typer.Option(help="root URI of the artifact store (overrides the config)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The whole method: evaluate, select, score the corpus, aggregate, publish a mixture."""
    _remix(load_run_config(config, store), as_json=as_json)


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
