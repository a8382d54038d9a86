"""Real Prefect process workers for tests and benchmarks: started as subprocesses, killed at exit.

A long-running ``prefect worker start`` ignores SIGTERM (DESIGN §5), so each worker runs in its
own session and the whole group is killed at the end; by then every run it took is final.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, the current API URL, and a worker that polls every second."""
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "AUTOMIXER_REPO": str(REPO),  # the deployments' pull step changes into it
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_HEARTBEAT_SECONDS": "30",
        **(extra or {}),
    }


def worker_command(
    pool: str, *, limit: int | None = None, run_once: bool = False, name: str | None = None
) -> list[str]:
    """``prefect worker start`` for a process worker on ``pool``."""
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if name is not None:
        cmd += ["--name", name]
    return cmd + (["--run-once"] if run_once else [])


@contextlib.contextmanager
def process_workers(pool: str, n: int, log_dir: Path, limit: int = 1) -> Iterator[list[Path]]:
    """``n`` process workers polling ``pool``, each running at most ``limit`` flow runs at once.

    Yields the workers' log files (stdout and stderr together).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    env = worker_env()
    try:
        for i in range(n):
            log = log_dir / f"{pool}-{i}.log"
            logs.append(log)
            with log.open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        worker_command(pool, limit=limit, name=f"{pool}-{i}"),
                        env=env,
                        cwd=REPO,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield logs
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def tail(logs: list[Path], chars: int = 3000) -> str:
    """The end of each log, for an assertion message."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs if p.exists())


def ensure_pool(name: str, type_: str = "process", template: dict[str, Any] | None = None) -> None:
    """Create the work pool when it does not exist yet."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type=type_, base_job_template=template or {}))
