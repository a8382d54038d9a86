"""``automixer demo``: a proxy run, then the whole remix, on the real data or on a planted world."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from automixer.cli import DEFAULT_DATA, _fail, _run, command, console

World = Literal["real", "planted"]


def demo_run_config(
    data: Path,
    out: Path,
    *,
    world: dict[str, Any] | None = None,
    limit: int = 200,
    docs_per_domain: int = 100,
) -> dict[str, Any]:
    """The demo's run config (as a dict): the proxy under ``out/proxy``, the store under
    ``out/store``; the paper's eight benchmarks from ``data``, or a planted world's own."""
    benchmarks: dict[str, Any] = {"data_dir": str(data), "eval_limit": limit, "query_limit": 64}
    if world is not None:
        benchmarks = {
            "names": [],
            "custom": [str(data / b["yaml"]) for b in world["benchmarks"].values()],
            "eval_limit": limit,
            "query_limit": 64,
        }
    return {
        "store": str(out / "store"),
        "checkpoints": {"uri": str(out / "proxy")},
        "benchmarks": benchmarks,
        "corpus": {
            "uri": str(data / "corpus"),
            "max_docs_per_file": docs_per_domain,
            "max_doc_chars": 2000,
            "shard_docs": 50,
        },
        "influence": {"hessian_samples": 64, "max_length": 256},
    }


def planted_world(folder: Path, seed: int = 0) -> dict[str, Any]:
    """The planted world in ``folder`` (written there first if absent)."""
    from automixer_core.worlds import PlantedWorldConfig, write_planted_world

    if (folder / "world.json").exists():
        world: dict[str, Any] = json.loads((folder / "world.json").read_text())
        return world
    return write_planted_world(folder, PlantedWorldConfig(seed=seed))


def demo_planted_world(out: Path) -> tuple[Path, dict[str, Any]]:
    """The data folder and world of the planted demo already run into ``out`` (``out/world``).

    Raises:
        ConfigError: ``out`` holds no planted world.
    """
    from automixer_core.errors import ConfigError

    folder = out / "world"
    if not (folder / "world.json").exists():
        raise ConfigError(
            f"No planted world under {out} (no {folder / 'world.json'})",
            expected="the output folder of a planted demo",
            fix=f"run `automixer demo --world planted --out {out}` first",
        )
    return folder, planted_world(folder)


def planted_recovery(store: str, mixture_id: str, world: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The published mixture and how its groups and weights compare with the planted truth
    (:func:`~automixer_core.validation.recovery.group_recovery`)."""
    from automixer_core.mixture import membership_from_parquet
    from automixer_core.published import read_published_mixture
    from automixer_core.store import Store
    from automixer_core.validation.recovery import group_recovery

    s = Store(store)
    mixture = read_published_mixture(s.uri(f"mixtures/{mixture_id}"))
    membership = membership_from_parquet(s.read_bytes(f"mixtures/{mixture_id}/membership.parquet"))
    harmful = [world["wrong_facts"]["domain"]] if world.get("wrong_facts") else []
    rec = group_recovery(
        membership,
        {b["domain"]: name for name, b in world["benchmarks"].items()},
        {d.name: d.weight for d in mixture.domains or []},
        distractors=world["distractors"],
        harmful=harmful,
    )
    return mixture, rec


def print_recovery(store: str, mixture_id: str, world: dict[str, Any]) -> dict[str, Any]:
    """How the published groups and weights compare with the planted truth."""
    mixture, rec = planted_recovery(store, mixture_id, world)
    harmful = bool(world.get("wrong_facts"))
    table = Table(title="Planted truth: where each domain's scored documents went (group: documents)")
    table.add_column("domain")
    table.add_column("teaches")
    table.add_column("weight", justify="right")
    table.add_column("groups")
    weights = {d.name: d.weight for d in mixture.domains or []}
    for domain, groups in rec["confusion"].items():
        role = world["domains"][domain]
        table.add_row(
            domain,
            role.get("benchmark") or role["role"],
            f"{weights.get(domain, 0.0):.3f}",
            ", ".join(f"{g}: {n}" for g, n in sorted(groups.items(), key=lambda kv: -kv[1])),
        )
    console.print(table)
    console.print(
        f"groups vs planted domains (relevant domains' documents): ARI {rec['ari']:.3f}, AMI {rec['ami']:.3f}, "
        f"{rec['correct']:.0%} in their own benchmark's group; weight on relevant domains "
        f"{rec['weight_relevant']:.3f}, distractors {rec['weight_distractor']:.3f}"
        + (f", wrong facts {rec['weight_harmful']:.3f}" if harmful else "")
    )
    return rec


@command("demo")
def demo_cmd(
    data: Annotated[
        Path, typer.Option(help="folder with corpus/<domain>/*.jsonl and benchmarks/ (world real)")
    ] = DEFAULT_DATA,
    out: Annotated[Path | None, typer.Option(help="where the demo writes everything")] = None,
    world: Annotated[
        str,
        typer.Option(
            help="real: ../shared/data | planted: a generated world where the right answer is known"
        ),
    ] = "real",
    steps: Annotated[int, typer.Option(help="proxy training steps")] = 480,
    limit: Annotated[int, typer.Option(help="evaluation rows per benchmark")] = 200,
    docs_per_domain: Annotated[int, typer.Option(help="corpus documents scored per domain")] = 100,
    validate: Annotated[
        bool, typer.Option(help="then train targets on the mixture and on baselines (3 seeds; ~20 min)")
    ] = False,
) -> None:
    """The main job on the embedded default: a proxy run, then the whole remix (and optionally its validation)."""
    # Here, not at the top: a module of commands imported first (``import automixer.remix_cmd``)
    # imports cli, whose registration block imports this module before that one is complete.
    from automixer.remix_cmd import _remix
    from automixer_core.config import RunConfig
    from automixer_core.errors import ConfigError
    from automixer_core.proxy.config import demo_proxy_config
    from flows.proxy_train import proxy_train_flow

    if world not in ("real", "planted"):
        _fail(
            ConfigError(
                f"--world {world!r} is not a world", expected="real or planted", fix="pass --world planted"
            )
        )
    out = out or Path("runs/demo" if world == "real" else "runs/demo-planted")
    t0 = time.perf_counter()
    truth = None
    if world == "planted":
        data = out / "world"
        truth = planted_world(data)
        console.print(
            f"[cyan]Planted world[/] in {data}: {len(truth['benchmarks'])} benchmarks, each taught by one domain; "
            f"distractors {truth['distractors']}"
        )
    if not (data / "corpus").is_dir():
        _fail(
            FileNotFoundError(
                f"{data}/corpus does not exist; pass --data DIR holding corpus/ and benchmarks/"
            )
        )
    proxy_dir = out / "proxy"
    cfg = demo_proxy_config(steps)
    if (proxy_dir / "proxy_run.json").exists():
        console.print(
            f"[cyan]Proxy run already in {proxy_dir}; reusing it (delete the folder to retrain).[/]"
        )
    else:
        console.rule("1. Proxy run")
        result = _run(proxy_train_flow, str(data / "corpus"), str(proxy_dir), cfg, overwrite=True)
        console.print(
            f"[green]Trained[/] {result['num_params']:,} params, {len(result['checkpoints'])} checkpoints, "
            f"{result['tokens_seen']:,} tokens at {result['tokens_per_second']:,.0f} tokens/s"
        )
    console.rule("2. Remix: evaluate, select, score, aggregate, publish")
    run = RunConfig.model_validate(
        demo_run_config(data, out, world=truth, limit=limit, docs_per_domain=docs_per_domain)
    )
    mixture = _remix(run)
    if truth is not None:
        print_recovery(run.store, mixture["id"], truth)
    if validate:
        from automixer.validate_cmd import print_validation
        from flows.validate import validate_flow

        console.rule("3. Validate: targets trained on the mixture and on baselines")
        print_validation(_run(validate_flow, run, None))
    console.print(f"[bold green]Done[/] in {time.perf_counter() - t0:.0f}s.")
