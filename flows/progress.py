"""Live progress of a flow run, seen three ways at once.

A flow declares its phases up front (``RunProgress(key, ["evaluate", "queries", "score"])``) and
reports each one as it starts (``phase(name, total, unit)``) and as its units finish
(``advance(name)``). Every report goes to:

- the run's Prefect log at INFO (the run page in the UI says what is happening);
- one progress artifact per run, across all phases from the start (phase ``i`` of ``P`` fills the
  bar from ``i/P`` to ``(i+1)/P``);
- the progress sinks registered in this process (:func:`listening`): the command line's rich bars.

Sinks are process-local: a flow run in this process (local and work-pool modes, where only the
units leave the process) reaches the terminal that started it; a flow run by a worker elsewhere
has no sink and reports through the log and the artifact only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from uuid import UUID


class ProgressSink(Protocol):
    """What receives a run's progress in this process (the command line's display)."""

    def flow_run(self, name: str, url: str | None) -> None:
        """The run started: its name, and its page in the Prefect UI where a server is configured."""

    def phase(self, name: str, total: int, unit: str, detail: str) -> None:
        """Phase ``name`` starts with ``total`` units of work (``unit``: what one is)."""

    def advance(self, name: str, n: int) -> None:
        """``n`` more units of phase ``name`` are done (computed, or found in the store)."""

    def end(self, name: str, summary: str) -> None:
        """Phase ``name`` is over; ``summary`` says what it did in words."""

    def show(self, kind: str, payload: dict[str, Any]) -> None:
        """A result worth showing as it arrives (``kind``: ``evaluation`` for the evaluation table
        and the artifact choices, with the evaluation report as ``payload``)."""


_SINKS: list[ProgressSink] = []
_LOCK = threading.Lock()


@contextlib.contextmanager
def listening(sink: ProgressSink) -> Iterator[ProgressSink]:
    """Send the progress of every flow run in this process to ``sink`` while the block runs."""
    with _LOCK:
        _SINKS.append(sink)
    try:
        yield sink
    finally:
        with _LOCK:
            _SINKS.remove(sink)


def _each(method: str, *args: Any) -> None:
    with _LOCK:
        sinks = list(_SINKS)
    for sink in sinks:
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # a display's fault never fails the run it displays
            logging.getLogger(__name__).warning("progress display failed (%s): %r", method, exc)


@dataclass
class _Phase:
    total: int
    unit: str
    done: int = 0
    t0: float = field(default_factory=time.perf_counter)


class RunProgress:
    """The progress of one flow run (create it inside the flow).

    Args:
        key: the progress artifact's key (``remix-progress``).
        phases: every phase's name, in order; the artifact's bar divides evenly among them.
        description: what the artifact's bar measures, in words.
    """

    def __init__(self, key: str, phases: list[str], description: str = "") -> None:
        from prefect import get_run_logger
        from prefect.artifacts import create_progress_artifact
        from prefect.runtime import flow_run

        self._phases = phases
        self._state: dict[str, _Phase] = {}
        self._lock = threading.Lock()
        self._log = get_run_logger()
        self._artifact = cast(
            UUID,
            create_progress_artifact(
                0.0, key=key, description=description or "phases: " + " → ".join(phases)
            ),
        )
        url = _ui_url(flow_run.get_id())
        name = str(flow_run.get_name() or "")
        if url:
            self._log.info("Flow run %s: %s", name, url)
        _each("flow_run", name, url)

    def phase(self, name: str, total: int, unit: str, detail: str = "") -> None:
        """Start phase ``name``: ``total`` units of ``unit`` (``detail``: what they are, in words)."""
        with self._lock:
            self._state[name] = _Phase(total, unit)
        self._log.info("%s: %d %s%s", name, total, unit, f" ({detail})" if detail else "")
        _each("phase", name, total, unit, detail)
        self._update()

    def advance(self, name: str, n: int = 1) -> None:
        """``n`` units of phase ``name`` are done."""
        with self._lock:
            self._state[name].done += n
        _each("advance", name, n)
        self._update()

    def end(self, name: str, summary: str = "") -> None:
        """Phase ``name`` is over (``summary``: what it did, e.g. "12 computed, 4 from the store")."""
        with self._lock:
            state = self._state.setdefault(name, _Phase(0, ""))
            state.done = state.total
            seconds = time.perf_counter() - state.t0
        text = f"{summary}{'; ' if summary else ''}{seconds:.1f} s"
        self._log.info("%s done: %s", name, text)
        _each("end", name, text)
        self._update()

    def show(self, kind: str, payload: dict[str, Any]) -> None:
        """Pass a result to the sinks as it arrives (see :meth:`ProgressSink.show`)."""
        _each("show", kind, payload)

    def finish(self) -> None:
        """Every phase is over (a run that skipped some, e.g. "nothing new", ends at 100%)."""
        from prefect.artifacts import update_progress_artifact

        update_progress_artifact(self._artifact, 100.0)

    def _update(self) -> None:
        from prefect.artifacts import update_progress_artifact

        with self._lock:
            filled = 0.0
            for name, state in self._state.items():
                if name in self._phases:
                    filled += min(1.0, state.done / state.total) if state.total else 1.0
        update_progress_artifact(self._artifact, round(100.0 * filled / max(1, len(self._phases)), 1))


def _ui_url(run_id: Any) -> str | None:
    """The run's page in the Prefect UI, where the API is a server a browser can open (not the
    embedded one the command line started, which stops with it)."""
    import os

    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    api = PREFECT_API_URL.value()
    if not run_id or not api or api == os.environ.get(EMBEDDED_API_ENV):
        return None
    base = PREFECT_UI_URL.value()
    return f"{str(base).rstrip('/')}/runs/flow-run/{run_id}" if base else None


#: Set by the command line to the URL of the embedded API it started (automixer.runtime).
EMBEDDED_API_ENV = "AUTOMIXER_EMBEDDED_API_URL"
