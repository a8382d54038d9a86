"""``automixer validate``: train target proxies on candidate mixtures and compare them."""

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


def print_validation(out: dict[str, Any]) -> None:
    """The headline of a validation: final mean acc_norm per candidate, paired differences, tokens."""
    final = Table(title=f"Validation {out['id']}: final mean acc_norm over benchmarks (± seed std)")
    final.add_column("candidate")
    final.add_column("mean acc_norm", justify="right")
    for name, v in out["final"].items():
        final.add_row(name, f"{v['value']:.4f} ± {v['seed_std']:.4f}")
    console.print(final)
    diffs = Table(title="Paired differences (final checkpoint, mean over benchmarks)")
    for col in ("candidate − baseline", "Δ acc_norm", "interval", "tokens to reach baseline"):
        diffs.add_column(col, justify="left" if col.startswith("candidate") else "right")
    for d in out["headline"]:
        frac = out["tokens_to_reach"].get(d["candidate"], {}).get(d["baseline"])
        mark = "[green]" if d["lo"] > 0 else "[red]" if d["hi"] < 0 else ""
        diffs.add_row(
            f"{d['candidate']} − {d['baseline']}",
            f"{mark}{d['delta']:+.4f}",
            f"[{d['lo']:+.4f}, {d['hi']:+.4f}]",
            "never" if frac is None else f"{frac:.2f}×",
        )
    console.print(diffs)
    console.print(f"validation: {out['uri']}")
    console.print(f"report:     {out['report']}")


@command("validate")
def validate_cmd(
    config: ConfigArgument = None,
    mixture: Annotated[
        str | None, typer.Option(help="a published mixture.json to validate (default: the config's remix)")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option(help="target runs per candidate (overrides the config)")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="root URI of the artifact store (overrides the config)")
    ] = None,
    config_option: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train target proxies on the mixture and on baselines (equal tokens, several seeds), compare them."""
    from flows.validate import validate_flow

    cfg = load_run_config(cast(Path, config_path(config, config_option)), store)
    if seeds:
        cfg = cfg.model_copy(update={"validation": cfg.validation.model_copy(update={"seeds": seeds})})
    t0 = time.perf_counter()
    out = _run(validate_flow, cfg, mixture, quiet=as_json)
    if as_json:
        emit_json(out)
        return
    print_validation(out)
    counts = out["counts"]
    console.print(
        f"trained {counts['targets_trained']} targets and ran {counts['remixes']} remixes "
        f"(everything else came from the store) in {time.perf_counter() - t0:.0f}s"
    )
