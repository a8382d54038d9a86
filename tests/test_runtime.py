"""The embedded Prefect API: started once, and gone when the process that started it is terminated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import os, sys, time
os.environ.pop("PREFECT_API_URL", None)
from automixer.runtime import embedded_prefect
with embedded_prefect() as url:
    print(url, flush=True)
    time.sleep(120)
"""


def _alive(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/health", timeout=2)
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One PREFECT_HOME for both signals: the second server finds its database migrated."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_cli_process_stops_the_ephemeral_server(prefect_home: Path, sig: signal.Signals) -> None:
    """The process alone is signalled (not its group): SIGTERM runs the at-exit hooks; SIGKILL runs
    nothing in it, and the watchdog it started stops the server."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(prefect_home)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        assert _alive(url)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        deadline = time.time() + 20
        while _alive(url) and time.time() < deadline:
            time.sleep(0.5)
        assert not _alive(url), "the ephemeral Prefect server outlived the terminated process"
    finally:
        proc.kill()
