"""``automixer``: the command line. Every command runs its Prefect flow on the embedded default."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from automixer.runtime import embedded_prefect, prepare_environment

prepare_environment()

app = typer.Typer(
    name="automixer",
    help="Turn the checkpoints a training run already saved into a data mixture for the next run.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``app.command(name)`` whose typed errors print as one message (exit 2), without a traceback."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            from automixer_core.errors import AutoMixerError

            try:
                return fn(*args, **kwargs)
            except AutoMixerError as exc:
                _fail(exc)

        return app.command(name)(run)

    return wrap


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` (a flow) on the embedded Prefect API; typed errors become one clear message."""
    from automixer_core.errors import AutoMixerError

    try:
        with embedded_prefect():
            return fn(*args, **kwargs)
    except AutoMixerError as exc:
        _fail(exc)


def _print_frame(df: Any, title: str, floatfmt: str = "{:.3f}") -> None:
    table = Table(title=title, show_lines=False)
    index_names = [n for n in (df.index.names or []) if n is not None]
    frame = df.reset_index() if index_names else df
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "fiu" else "left")
    for _, row in frame.iterrows():
        table.add_row(*[floatfmt.format(v) if isinstance(v, float) else str(v) for v in row.tolist()])
    console.print(table)


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
) -> None:
    """List the checkpoints under URI, ordered by step, with their fingerprints."""
    from automixer_core.checkpoints import discover_checkpoints
    from automixer_core.errors import AutoMixerError

    try:
        result = discover_checkpoints(uri, revision=revision or None)
    except AutoMixerError as exc:
        _fail(exc)
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


def _evaluate(config: Any) -> dict[str, Any]:
    import io

    import pandas as pd

    from automixer_core.store import Store
    from flows.evaluate import evaluate_flow
    from tasks.reports import wide_table

    t0 = time.perf_counter()
    report = _run(evaluate_flow, config)
    store = Store(config.store)
    evals = pd.read_parquet(io.BytesIO(store.read_bytes(report["keys"]["evals.parquet"])))
    chosen = pd.read_csv(io.BytesIO(store.read_bytes(report["keys"]["selection.csv"])))
    metric = config.selection.metric
    _print_frame(wide_table(evals, metric), f"{metric} by checkpoint (rows) and benchmark (columns)")
    _print_frame(chosen[["benchmark", "checkpoint", "step", "score", "reason"]], "Artifact models")
    console.print(
        f"{report['computed']} of {report['pairs']} (checkpoint, benchmark) evaluations computed, the rest read "
        f"from the store; {time.perf_counter() - t0:.0f}s"
    )
    for name, uri in report["uris"].items():
        console.print(f"  {name}: {uri}")
    return report


@command("evaluate")
def evaluate_cmd(
    checkpoints: Annotated[
        str | None, typer.Option(help="folder, s3:// prefix or hf://org/repo of checkpoints")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="folder holding benchmarks/<name>/<split>.jsonl")] = None,
    config: Annotated[Path | None, typer.Option(help="run config YAML (see configs/)")] = None,
    benchmarks: Annotated[str | None, typer.Option(help="comma-separated benchmark names")] = None,
    limit: Annotated[int | None, typer.Option(help="evaluation rows per benchmark (seeded sample)")] = None,
    store: Annotated[str | None, typer.Option(help="root URI of the artifact store")] = None,
    metric: Annotated[str | None, typer.Option(help="acc or acc_norm, for selection")] = None,
) -> None:
    """Evaluate every checkpoint on every benchmark; print the table, choose artifact models, plot."""
    from automixer_core.config import RunConfig, load_config, parse_config

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
        _fail(ValueError("give --checkpoints URI or a --config with a checkpoints section"))
    cfg: RunConfig = parse_config(base, RunConfig, source="command line")
    _evaluate(cfg)


@command("demo")
def demo_cmd(
    data: Annotated[
        Path, typer.Option(help="folder with corpus/<domain>/*.jsonl and benchmarks/")
    ] = DEFAULT_DATA,
    out: Annotated[Path, typer.Option(help="where the demo writes everything")] = Path("runs/demo"),
    steps: Annotated[int, typer.Option(help="proxy training steps")] = 480,
    limit: Annotated[int, typer.Option(help="evaluation rows per benchmark")] = 200,
) -> None:
    """The whole job on the embedded default: a proxy run on the real corpus, then evaluation and selection."""
    from automixer_core.config import RunConfig
    from automixer_core.proxy import ProxyConfig
    from flows.proxy_train import proxy_train_flow

    if not (data / "corpus").is_dir():
        _fail(
            FileNotFoundError(
                f"{data}/corpus does not exist; pass --data DIR holding corpus/ and benchmarks/"
            )
        )
    t0 = time.perf_counter()
    proxy_dir = out / "proxy"
    cfg = ProxyConfig(
        hidden=64,
        layers=2,
        heads=4,
        vocab_size=4096,
        seq_len=128,
        batch_size=16,
        steps=steps,
        warmup=steps // 10,
        lr=3e-3,
        save_every=max(1, steps // 8),
        seed=0,
        max_docs_per_group=1000,
    )
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
    console.rule("2. Evaluation and artifact selection")
    run = RunConfig.model_validate(
        {
            "store": str(out / "store"),
            "checkpoints": {"uri": str(proxy_dir)},
            "benchmarks": {"data_dir": str(data), "eval_limit": limit},
        }
    )
    _evaluate(run)
    console.print(f"[bold green]Done[/] in {time.perf_counter() - t0:.0f}s.")


def main() -> None:  # pragma: no cover
    sys.exit(app())
