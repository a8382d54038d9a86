"""``automixer label``: predict the groups of the documents a remix did not score."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from automixer.cli import (
    ConfigArgument,
    ConfigOption,
    JsonOption,
    _run,
    command,
    config_path,
    console,
    emit_json,
    load_run_config,
)


def print_labels(out: dict[str, Any]) -> None:
    """The predictor's held-out agreement, then the documents per group next to the mixture's weights."""
    from automixer_core.labels.summary import accuracy_sentence

    report = out["predictor"]["report"]
    console.print(f"Group predictor {out['predictor']['digest']}: {accuracy_sentence(report)}")
    summary = out["summary"]
    table = Table(
        title=f"Labels {out['id']}: {summary['documents']:,} documents, {summary['scored']:,} scored, "
        f"{summary['predicted']:,} predicted"
    )
    for col in ("group", "documents", "scored", "predicted", "token share", "mixture weight", "held-out F1"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for g, v in summary["groups"].items():
        f1 = report["per_group"].get(g, {}).get("f1")
        table.add_row(
            g,
            f"{v['documents']:,}",
            f"{v['scored']:,}",
            f"{v['predicted']:,}",
            f"{100 * v['token_share']:.1f}%",
            f"{100 * v['weight']:.1f}%",
            "" if f1 is None else f"{f1:.3f}",
        )
    console.print(table)
    console.print(f"labels:  {out['uri']}")
    for uri in out["exports"]:
        console.print(f"export:  {uri}")


@command("label")
def label_cmd(
    config: ConfigArgument = None,
    mixture: Annotated[
        str | None,
        typer.Option(help="a published mixture.json whose groups to predict (default: the latest)"),
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="root URI of the artifact store (overrides the config)")
    ] = None,
    config_option: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give every corpus document a group: its scored group, or one predicted from its text."""
    from flows.label import label_flow

    cfg = load_run_config(cast(Path, config_path(config, config_option)), store)
    t0 = time.perf_counter()
    out = _run(label_flow, cfg, mixture, quiet=as_json)
    if as_json:
        emit_json(out)
        return
    print_labels(out)
    counts = out["counts"]
    console.print(
        f"labelled {counts['shards_labelled']} of {counts['shards']} shards "
        f"({counts['documents_labelled']:,} documents; the rest came from the store) "
        f"in {time.perf_counter() - t0:.0f}s"
    )
