"""What a run reads: ``automixer benchmarks`` (the registered benchmarks), ``automixer discover``
(the checkpoints under a URI) and ``automixer proxy-train`` (a small run that writes checkpoints)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from automixer.cli import JsonOption, _fail, _run, command, console, emit_json


@command("benchmarks")
def benchmarks_cmd() -> None:
    """List the registered benchmarks."""
    from automixer_core.benchmarks import PAPER_BENCHMARKS, list_tasks

    for name in list_tasks():
        console.print(f"{name}{'  (paper)' if name in PAPER_BENCHMARKS else ''}")


@command("discover")
def discover_cmd(
    uri: Annotated[str, typer.Argument(help="folder, s3:// prefix or hf://org/repo holding checkpoints")],
    revision: Annotated[list[str] | None, typer.Option(help="hub revisions / folder names to keep")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the checkpoints under URI, ordered by step, with their fingerprints."""
    from automixer_core.checkpoints import discover_checkpoints
    from automixer_core.errors import AutoMixerError

    try:
        result = discover_checkpoints(uri, revision=revision or None)
    except AutoMixerError as exc:
        _fail(exc)
        return
    if as_json:
        emit_json(
            {
                "uri": uri,
                "checkpoints": [dataclasses.asdict(c) for c in result.checkpoints],
                "skipped": [{"uri": where, "reason": reason} for where, reason in result.skipped],
            }
        )
        return
    table = Table(title=f"Checkpoints under {uri}")
    for col in ("step", "name", "fingerprint", "uri"):
        table.add_column(col)
    for c in result.checkpoints:
        table.add_row(str(c.step), c.name, c.fingerprint, c.uri)
    console.print(table)
    for where, reason in result.skipped:
        console.print(f"[yellow]skipped[/] {where}: {reason}")


@command("proxy-train")
def proxy_train_cmd(
    corpus: Annotated[str, typer.Option(help="folder or s3:// prefix of jsonl/jsonl.gz/parquet documents")],
    out: Annotated[str, typer.Option(help="where checkpoint-<step>/ folders are written (local or s3://)")],
    config: Annotated[Path | None, typer.Option(help="YAML with ProxyConfig fields")] = None,
    steps: Annotated[int | None, typer.Option(help="override: optimizer steps")] = None,
    save_every: Annotated[int | None, typer.Option(help="override: checkpoint every N steps")] = None,
    mixture: Annotated[str | None, typer.Option(help="a published mixture.json to sample groups by")] = None,
    by_groups: Annotated[
        bool,
        typer.Option(
            help="with --mixture: sample its task groups (its membership.parquet: the scored documents "
            "only, residual at weight 0), as a trainer sampling by group would; default: its per-domain "
            "weights on a corpus labelled by domain"
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option(help="override: seed")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run in --out")] = False,
) -> None:
    """Train a small proxy LM from scratch, saving Hugging Face checkpoints."""
    from automixer_core.config import load_config, parse_config
    from automixer_core.proxy import ProxyConfig
    from flows.proxy_train import proxy_train_flow

    cfg: ProxyConfig = load_config(config, ProxyConfig) if config else ProxyConfig()
    updates = {
        k: v
        for k, v in {"steps": steps, "save_every": save_every, "group_weights": mixture, "seed": seed}.items()
        if v is not None
    }
    if by_groups:
        if mixture is None:
            _fail(
                ValueError("--by-groups needs --mixture (the published mixture.json whose groups to sample)")
            )
        assert mixture is not None
        from automixer_core.published import mixture_folder

        updates["group_membership"] = mixture_folder(mixture) + "/membership.parquet"
        updates["membership_column"] = "group"
    if updates:
        cfg = parse_config({**cfg.model_dump(), **updates}, ProxyConfig, source="command line")
    t0 = time.perf_counter()
    result = _run(proxy_train_flow, corpus, out, cfg, overwrite=overwrite)
    console.print(
        f"[green]Trained[/] {result['num_params']:,} params on {result['tokens_seen']:,} tokens in "
        f"{time.perf_counter() - t0:.0f}s ({result['tokens_per_second']:,.0f} tokens/s), final loss {result['final_loss']:.3f}"
    )
    for c in result["checkpoints"]:
        console.print(f"  step {c['step']:>6}  loss {c['loss']:.3f}  {c['uri']}")
