"""``automixer``: the command line. Every command runs its Prefect flow on the embedded default."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from automixer.runtime import embedded_prefect, prepare_environment

prepare_environment()

app = typer.Typer(
    name="automixer",
    help="Turn the checkpoints a training run already saved into a data mixture for the next run.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) gets a wide console instead of rich's 80-column default.
console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=160)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _version(value: bool) -> None:
    if value:
        from automixer_core import __version__

        console.print(f"automixer {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Turn the checkpoints a training run already saved into a data mixture for the next run."""


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


#: Exit codes: 2 = the command could not start (bad arguments, config or input); 1 = a run started
#: and failed. Either way one message, no traceback (a failed run's traceback goes to a log file).
EXIT_USAGE = 2
EXIT_RUN_FAILED = 1


def _fail(exc: Exception, code: int = EXIT_USAGE) -> None:
    from automixer_core.errors import AutoMixerError

    kind = f"{type(exc).__name__}: " if isinstance(exc, AutoMixerError) else ""
    # Text, not markup: a message may hold brackets ("names: [arc_easy, pica]").
    err_console.print(Text.assemble(("error: ", "bold red"), f"{kind}{exc}"), highlight=False)
    raise typer.Exit(code=code)


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` (a flow) on the embedded Prefect API. A typed error prints as one clear message;
    any other exception as one line; exit code 1. Tracebacks (Prefect's logs of a failed task, and
    the final exception's) go to one file under ``.automixer/logs/``, never to the terminal."""
    import traceback

    from automixer.tracebacks import append_traceback, new_log_path, tracebacks_to
    from automixer_core.errors import AutoMixerError

    log = new_log_path()
    try:
        with embedded_prefect(), tracebacks_to(log):
            return fn(*args, **kwargs)
    except AutoMixerError as exc:
        append_traceback(log, traceback.format_exc())
        _fail(exc, EXIT_RUN_FAILED)
    except Exception as exc:
        append_traceback(log, traceback.format_exc())
        _fail(
            RuntimeError(f"the run failed: {type(exc).__name__}: {exc} (traceback: {log})"), EXIT_RUN_FAILED
        )


def _print_frame(df: Any, title: str, floatfmt: str = "{:.3f}") -> None:
    table = Table(title=title, show_lines=False)
    index_names = [n for n in (df.index.names or []) if n is not None]
    frame = df.reset_index() if index_names else df
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "fiu" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[floatfmt.format(v) if isinstance(v, float) else str(v) for v in row])
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


def _remix(config: Any) -> dict[str, Any]:
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
    out = _run(remix_flow, config)
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


def load_run_config(path: Path, store: str | None = None) -> Any:
    """The run config at ``path`` (a RunConfig), with ``--store`` replacing its store when given."""
    from automixer_core.config import load_config

    cfg = load_config(path)
    return cfg.model_copy(update={"store": store}) if store else cfg


@command("remix")
def remix_cmd(
    config: Annotated[Path, typer.Argument(help="run config YAML (see configs/example.yaml)")],
    store: Annotated[
        str | None, typer.Option(help="root URI of the artifact store (overrides the config)")
    ] = None,
) -> None:
    """The whole method: evaluate, select, score the corpus, aggregate, publish a mixture."""
    _remix(load_run_config(config, store))


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


@command("deploy")
def deploy_cmd(
    name: Annotated[
        list[str] | None, typer.Option("--name", help="deployment(s) to register (default: all)")
    ] = None,
    prefect_file: Annotated[Path, typer.Option(help="the project file")] = Path("deployments/prefect.yaml"),
    pool: Annotated[
        str | None,
        typer.Option(
            help="put the --name deployments on this work pool (e.g. a process pool of GPU machines)"
        ),
    ] = None,
) -> None:
    """Register the deployments (remix, score-shards, proxy-train) with the server in PREFECT_API_URL."""
    from automixer.deploy import deploy

    for full in deploy(prefect_file, name or None, pool=pool):
        console.print(f"[green]registered[/] {full}")


@command("schema")
def schema_cmd(
    deployment: Annotated[str, typer.Argument(help="deployment name (remix, or flow/deployment)")] = "remix",
    prefect_file: Annotated[Path, typer.Option(help="the project file")] = Path("deployments/prefect.yaml"),
    server: Annotated[
        bool, typer.Option(help="read the registered deployment from PREFECT_API_URL, not the code")
    ] = False,
) -> None:
    """The deployment's run form as the UI renders it: every field, its type, default and description."""
    from automixer.deploy import (
        DeploymentError,
        form_fields,
        local_parameter_schema,
        parameter_schema,
        read_prefect_yaml,
    )

    if server:
        schema = parameter_schema(deployment)
    else:
        found = [
            d
            for d in read_prefect_yaml(prefect_file)["deployments"]
            if d.get("name") == deployment.split("/")[-1]
        ]
        if not found:
            raise DeploymentError(f"{prefect_file} defines no deployment named {deployment!r}")
        schema = local_parameter_schema(str(found[0]["entrypoint"]))
    table = Table(title=f"Run form of {deployment}")
    for col in ("field", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for f in form_fields(schema):
        default = json.dumps(f.default) if f.has_default and not f.type.startswith("section") else ""
        table.add_row(f.path + (" *" if f.required else ""), f.type, default, f.description)
    console.print(table)


@command("trigger")
def trigger_cmd(
    deployment: Annotated[str, typer.Argument(help="deployment name (remix, or flow/deployment)")] = "remix",
    config: Annotated[
        Path | None, typer.Option(help="run config YAML passed as the `config` parameter")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="idempotency key (e.g. the commit id): same key, same run")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for a final state")] = 3600.0,
) -> None:
    """Start a deployment's run on the server in PREFECT_API_URL, wait, and exit 0 only if it completed."""
    import httpx

    from automixer.deploy import trigger
    from automixer_core.config import RunConfig, load_config
    from automixer_core.store import Store

    cfg: RunConfig | None = load_config(config) if config else None
    params = {"config": cfg.model_dump(mode="json")} if cfg else {}
    try:
        result = trigger(
            deployment, params, key, timeout_s=timeout, on_state=lambda s: console.print(f"state: {s}")
        )
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
        from automixer.runtime import configured_api_url
        from automixer_core.errors import ExecutionError

        _fail(
            ExecutionError(
                f"Cannot reach the Prefect API at {configured_api_url() or '(PREFECT_API_URL unset)'} "
                f"({type(exc).__name__}: {exc})",
                fix="start the server (prefect server start) or set PREFECT_API_URL to the server your "
                "workers poll",
            )
        )
    what = "started" if result.created else "found (same idempotency key)"
    console.print(
        f"flow run {result.flow_run_name} ({result.flow_run_id}) {what}: {result.state_name}", soft_wrap=True
    )
    if result.url:
        console.print(f"  {result.url}")
    if not result.ok:
        err_console.print(f"[bold red]not completed:[/] {result.message}")
        raise typer.Exit(code=1)
    if result.message and result.message != result.state_name:
        console.print(f"{result.state_name}: {result.message}")
    if cfg is not None and Store(cfg.store).exists("mixtures/latest.json"):
        latest = Store(cfg.store).read_json("mixtures/latest.json")
        console.print(f"mixture {latest['id']}: {latest['uri']}")


# Commands defined in modules of their own register on ``app`` when imported here.
from automixer import demo as _demo  # noqa: E402
from automixer import label_cmd as _label_cmd  # noqa: E402
from automixer import validate_cmd as _validate_cmd  # noqa: E402

del _demo, _label_cmd, _validate_cmd


def main() -> None:  # pragma: no cover
    sys.exit(app())
