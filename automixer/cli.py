"""``automixer``: the command line. Every command runs its Prefect flow on the embedded default.

This module holds what the commands share (the app, ``command``, ``_run``, exit codes, the
consoles, ``--json``); the commands live in modules of their own, imported at the bottom.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
from collections.abc import Callable, Iterator
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
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="show library logs too (Prefect, transformers, datasets, dask)"),
    ] = False,
) -> None:
    """Turn the checkpoints a training run already saved into a data mixture for the next run."""
    if verbose:
        from automixer.runtime import set_verbose

        set_verbose()


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


def _run(fn: Any, *args: Any, quiet: bool = False, on_show: Any = None, **kwargs: Any) -> Any:
    """Run ``fn`` (a flow) on the embedded Prefect API, its progress drawn on stderr (phase lines
    and live bars, :mod:`automixer.progress_view`). A typed error prints as one clear message;
    any other exception as one line; exit code 1. Tracebacks (Prefect's logs of a failed task, and
    the final exception's) go to one file under ``.automixer/logs/``, never to the terminal.
    ``quiet`` (for ``--json``): whatever the run writes to stdout goes to stderr instead.
    ``on_show``: called with ``(kind, payload)`` for results the flow shows as they arrive."""
    import traceback

    from automixer.progress_view import ConsoleProgress
    from automixer.tracebacks import append_traceback, new_log_path, tracebacks_to
    from automixer_core.errors import AutoMixerError
    from flows.progress import listening

    log = new_log_path()
    try:
        with (
            embedded_prefect(),
            tracebacks_to(log),
            _stdout_to_stderr(quiet),
            ConsoleProgress(err_console, on_show) as view,
            listening(view),
        ):
            return fn(*args, **kwargs)
    except AutoMixerError as exc:
        append_traceback(log, traceback.format_exc())
        _fail(exc, EXIT_RUN_FAILED)
    except Exception as exc:
        append_traceback(log, traceback.format_exc())
        _fail(
            RuntimeError(f"the run failed: {type(exc).__name__}: {exc} (traceback: {log})"), EXIT_RUN_FAILED
        )


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


#: ``--json``: the command's result as one JSON document on stdout, and nothing else there.
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="print the result as one JSON document on stdout, and nothing else there "
        "(errors still go to stderr, with the same exit codes)",
    ),
]


def _json_safe(obj: Any) -> Any:
    """``obj`` with what JSON cannot hold made plain: numpy scalars as numbers, NaN/inf as null,
    tuples as lists, dataclasses as objects; anything else unknown becomes its ``str`` later."""
    import dataclasses

    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_json_safe(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _json_safe(dataclasses.asdict(obj))
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit_json(obj: Any) -> None:
    """Print ``obj`` on stdout as one JSON document (the whole of a ``--json`` command's stdout)."""
    sys.stdout.write(json.dumps(_json_safe(obj), default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def _print_frame(df: Any, title: str, floatfmt: str = "{:.3f}") -> None:
    table = Table(title=title, show_lines=False)
    index_names = [n for n in (df.index.names or []) if n is not None]
    frame = df.reset_index() if index_names else df
    for col in frame.columns:
        table.add_column(str(col), justify="right" if frame[col].dtype.kind in "fiu" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[floatfmt.format(v) if isinstance(v, float) else str(v) for v in row])
    console.print(table)


#: A run config: every command that takes one takes it as its argument (``automixer remix
#: run.yaml``), or as ``--config run.yaml``, an alias kept for scripts written either way.
ConfigArgument = Annotated[
    Path | None,
    typer.Argument(help="run config YAML (see configs/example.yaml)", show_default=False),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="the run config, as an option (alias of the argument)"),
]


def config_path(argument: Path | None, option: Path | None, *, required: bool = True) -> Path | None:
    """The run config given as the argument or as ``--config`` (one of them, or both alike)."""
    from automixer_core.errors import ConfigError

    if argument is not None and option is not None and argument != option:
        _fail(
            ConfigError(
                f"Two run configs given: {argument} (argument) and {option} (--config)",
                fix="give one of them",
            )
        )
    path = argument or option
    if path is None and required:
        _fail(
            ConfigError(
                "No run config given", fix="pass it: automixer <command> run.yaml (or --config run.yaml)"
            )
        )
    return path


def load_run_config(path: Path, store: str | None = None) -> Any:
    """The run config at ``path`` (a RunConfig), with ``--store`` replacing its store when given."""
    from automixer_core.config import load_config

    cfg = load_config(path)
    return cfg.model_copy(update={"store": store}) if store else cfg


# The commands live in modules of their own and register on ``app`` when imported here (in the
# order ``--help`` lists them, hence not sorted).
# isort: off
from automixer import inputs_cmd as _inputs_cmd  # noqa: E402
from automixer import evaluate_cmd as _evaluate_cmd  # noqa: E402
from automixer import remix_cmd as _remix_cmd  # noqa: E402
from automixer import plan_cmd as _plan_cmd  # noqa: E402
from automixer import deploy_cmd as _deploy_cmd  # noqa: E402
from automixer import demo as _demo  # noqa: E402
from automixer import label_cmd as _label_cmd  # noqa: E402
from automixer import validate_cmd as _validate_cmd  # noqa: E402
# isort: on

del _inputs_cmd, _evaluate_cmd, _remix_cmd, _plan_cmd, _deploy_cmd, _demo, _label_cmd, _validate_cmd


def main() -> None:  # pragma: no cover
    sys.exit(app())
