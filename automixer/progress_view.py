"""The command line's view of a run's progress (a :class:`flows.progress.ProgressSink`).

Each phase prints one line as it starts ("▸ evaluate: 24 evaluations (3 checkpoints × 8
benchmarks)") and one as it ends ("✓ evaluate: 20 computed, 4 from the store; 41.2 s"); between
them a rich progress bar with the count, the rate and the time left. Output goes to stderr, so a
``--json`` command's stdout holds its JSON alone. On a terminal the bars are live; piped to a file
or a CI log only the start and end lines appear (no control characters).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ConsoleProgress:
    """Phase lines and live bars on ``console`` (the command line's stderr console).

    Args:
        console: where to draw.
        on_show: called with ``(kind, payload)`` of :meth:`show` (the command prints the evaluation
            table and the artifact choices as soon as they exist); None ignores them.
    """

    def __init__(self, console: Console, on_show: Any = None) -> None:
        self._console = console
        self._on_show = on_show
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._counts: dict[str, tuple[float, int]] = {}  # phase → (start, units done)
        self._progress = Progress(
            TextColumn("  [bold]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TextColumn("[cyan]{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
            transient=True,  # a finished bar gives way to its ✓ line
            disable=not console.is_terminal,
        )

    def __enter__(self) -> ConsoleProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def flow_run(self, name: str, url: str | None) -> None:
        if url:
            self._console.print(f"[bold]flow run[/] {name}: [link={url}]{url}[/link]", highlight=False)

    def phase(self, name: str, total: int, unit: str, detail: str) -> None:
        extra = f" ({detail})" if detail else ""
        self._progress.console.print(f"[bold cyan]▸[/] {name}: {total} {unit}{extra}", highlight=False)
        with self._lock:
            self._tasks[name] = self._progress.add_task(name, total=max(total, 0), unit=unit, rate="")
            self._counts[name] = (time.perf_counter(), 0)

    def advance(self, name: str, n: int) -> None:
        with self._lock:
            task_id = self._tasks.get(name)
            if task_id is None:
                return
            t0, done = self._counts[name]
            done += n
            self._counts[name] = (t0, done)
        rate = done / max(time.perf_counter() - t0, 1e-9)
        self._progress.update(task_id, advance=n, rate=f"{rate:.2f}/s" if rate < 10 else f"{rate:,.0f}/s")

    def end(self, name: str, summary: str) -> None:
        with self._lock:
            task_id = self._tasks.pop(name, None)
        if task_id is not None:
            self._progress.remove_task(task_id)
        self._progress.console.print(f"[bold green]✓[/] {name}: {summary}", highlight=False)

    def show(self, kind: str, payload: dict[str, Any]) -> None:
        if self._on_show is not None:
            self._on_show(kind, payload)
