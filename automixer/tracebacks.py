"""Tracebacks go to a log file, not the terminal: a failed run prints one message per log line.

Prefect logs a failed task or flow with its traceback on the console handler (on the root logger).
While a CLI command runs, a filter on that handler writes each traceback to
``.automixer/logs/run-<time>.txt`` and leaves the one-line message, with the file's path, on screen.
The Prefect API (the UI) still receives the whole record: its handler runs before the root one.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path


def new_log_path(root: Path = Path(".automixer/logs")) -> Path:
    """A fresh ``run-<time>.txt`` under ``root`` (not created until something is written)."""
    return root / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6:06d}.txt"


def append_traceback(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(text.rstrip("\n") + "\n\n")


class TracebackToFile(logging.Filter):
    """Moves a record's traceback to ``path`` and notes the path in its message."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            head = f"{time.strftime('%H:%M:%S')} {record.name}: {record.getMessage()}"
            append_traceback(self.path, head + "\n" + "".join(traceback.format_exception(*record.exc_info)))
            record.msg = f"{record.getMessage()} (traceback: {self.path})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _reopen_if_closed(handler: logging.Handler) -> None:
    """Point a console handler whose stream was closed at today's ``sys.stderr``.

    Prefect binds its console handler to the ``sys.stderr`` of the moment logging was set up; a
    command run earlier in the same process under a replaced stderr (a test runner, a notebook
    cell) leaves it writing to a closed stream, and every record then prints "Logging error".
    """
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return
    if getattr(handler.stream, "closed", False):
        handler.stream = sys.stderr  # not setStream: it flushes the closed stream first
        console = getattr(handler, "console", None)  # Prefect's handler writes through a rich Console
        if console is not None:
            console.file = sys.stderr


@contextlib.contextmanager
def tracebacks_to(path: Path) -> Iterator[Path]:
    """Within the block, tracebacks logged through the root logger's handlers go to ``path``."""
    tb_filter = TracebackToFile(path)
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(tb_filter)
        _reopen_if_closed(h)
    try:
        yield path
    finally:
        for h in handlers:
            h.removeFilter(tb_filter)
