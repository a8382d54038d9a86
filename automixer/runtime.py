"""The embedded default: an ephemeral Prefect API started once per process tree.

With ``PREFECT_API_URL`` set (a Prefect server or Cloud), that API is used as it is. Otherwise a
temporary Prefect server on SQLite under a project-local ``PREFECT_HOME`` is started once, its URL
exported, so every worker process started below shares it instead of starting its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


def prepare_environment(home: Path | None = None) -> None:
    """Environment defaults that must be in place before Prefect is imported."""
    os.environ.setdefault("PREFECT_HOME", str((home or Path.cwd() / ".automixer" / "prefect").resolve()))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # INFO reaches the run's log in the Prefect UI (phases, evaluations); the terminal shows
    # warnings only, unless --verbose (the command line draws its own progress instead).
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # The ephemeral server logs harmless database-pool cancellations when it stops at exit.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # `datasets` prints a "Generating rows split" bar for every benchmark file it reads.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    import logging

    logging.getLogger("distributed").setLevel(logging.WARNING)  # Dask's start-up chatter
    if "datasets" in sys.modules:  # imported before us (a notebook, a test run): the variable is read
        sys.modules["datasets"].disable_progress_bars()


def set_verbose() -> None:
    """``--verbose``: library logs (Prefect's INFO, transformers, datasets' bars) on the terminal."""
    import logging

    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO"
    os.environ["TRANSFORMERS_VERBOSITY"] = "info"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "0"
    logging.getLogger("distributed").setLevel(logging.INFO)
    if "prefect" in sys.modules:  # configured already: again, with the new levels
        from prefect.logging.configuration import setup_logging

        setup_logging(incremental=False)


def _exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit, so the at-exit hooks stop the ephemeral server.

    Without this a terminated CLI (``kill``, a CI timeout) leaves the server process running.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


#: The watchdog: blocks on its stdin (a pipe only the CLI holds open); end of file means the CLI is
#: gone, however it died (SIGKILL included), so it stops the server: SIGTERM, then SIGKILL after 5 s.
_WATCHDOG = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
pid = int(sys.argv[1])
sys.stdin.buffer.read()
for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        break
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
"""


def _stop_with_this_process(server_pid: int) -> None:
    """Start a watchdog that stops the server ``server_pid`` once this process is gone.

    At-exit hooks and the SIGTERM handler cover a normal exit and ``kill``; ``kill -9`` of this
    process (an OOM kill, a scheduler's hard stop) runs neither, and the server would run on.
    """
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(server_pid)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or group kill of the CLI does not reach it first
        )
    finally:
        os.close(read_end)
    # write_end stays open (and is not inherited: os.pipe descriptors are non-inheritable) until
    # this process ends; a reference keeps it from being collected.
    _WATCHDOG_PIPES.append(write_end)


_WATCHDOG_PIPES: list[int] = []


def configured_api_url(home: Path | None = None) -> str | None:
    """The Prefect API set in the environment or profile (a server workers can poll), else None."""
    prepare_environment(home)
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or None


@contextlib.contextmanager
def embedded_prefect(home: Path | None = None) -> Iterator[str]:
    """Yield the URL of a Prefect API: the configured one, or an ephemeral one started here."""
    url = configured_api_url(home)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if url:
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer

    # The server lives as long as this process: Prefect's own at-exit hook drains queued events
    # and logs first (threading shutdown), then the server's at-exit hook stops it.
    server = SubprocessASGIServer()
    server.start(timeout=90)
    _exit_cleanly_on_sigterm()
    if server.server_process is not None:
        _stop_with_this_process(server.server_process.pid)
    os.environ["PREFECT_API_URL"] = server.api_url
    os.environ["AUTOMIXER_EMBEDDED_API_URL"] = server.api_url  # no UI link to a server that stops with us
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield server.api_url
