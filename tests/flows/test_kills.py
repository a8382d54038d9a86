"""Kill -9 at three moments (evaluation, scoring, publishing), then resume: nothing finished is
computed again, and no partial file is visible to a reader.

The remix runs in a child process that SIGKILLs itself at the chosen moment (the N-th call of the
step's inner function), which is a real kill at a reproducible point: no finally block, no lease
release, no cleanup runs. The resume runs here, on the same store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from automixer_core.config import RunConfig
from automixer_core.errors import StorageError
from automixer_core.published import read_published_mixture
from automixer_core.store import Store
from flows.remix import remix_flow
from tests.flows.test_remix_flow import BENCHES, _config, _copy_checkpoints
from tests.prefect_workers import REPO, worker_env

pytestmark = pytest.mark.slow

#: moment → (module, function, the call that kills): the 4th evaluation, the 3rd scoring unit, the
#: publish after every file but the manifest was written.
MOMENTS = {
    "evaluation": ("tasks.evaluate", "_evaluate", 4),
    "scoring": ("tasks.influence", "_score_unit", 3),
    "publishing": ("tasks.publish", "write_manifest", 1),
}

CHILD = """
import importlib, json, os, signal, sys
module, name, nth, config = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
mod = importlib.import_module(module)
real = getattr(mod, name)
calls = [0]
def killing(*args, **kwargs):
    calls[0] += 1
    if calls[0] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(mod, name, killing)
from automixer_core.config import RunConfig
from flows.remix import remix_flow
remix_flow(RunConfig.model_validate(json.loads(config)))
"""


def _finished(store: Store) -> dict[str, set[str]]:
    """The units whose outputs a reader can see: evaluation summaries, query vectors, score files."""
    keys = store.list("")
    return {
        "evaluations": {k for k in keys if k.startswith("evals/") and k.endswith(".json")},
        "queries": {k for k in keys if k.startswith("queries/")},
        "scores": {k for k in keys if k.startswith("scores/")},
    }


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_kill_then_resume_recomputes_nothing_finished(
    moment: str, prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path
) -> None:
    _copy_checkpoints(proxy_run, tmp_path / "run", 2)
    cfg = _config(
        str(tmp_path / "store"),
        tmp_path / "run",
        shared_data,
        influence={"estimator": "grad_dot"},
        corpus={"shard_docs": 10},  # 9 shards: one unit each
    )
    module, name, nth = MOMENTS[moment]
    env = worker_env({"AUTOMIXER_LEASE_TTL_S": "2"})
    child = subprocess.run(
        [sys.executable, "-c", CHILD, module, name, str(nth), cfg.model_dump_json()],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    store = Store(cfg.store)
    before = _finished(store)
    if moment == "evaluation":
        assert len(before["evaluations"]) == 3  # three finished before the kill: the resume must keep them
    if moment == "scoring":
        assert before["scores"] and before["queries"]
    for key in store.list("evals"):  # every evaluation a reader can see is whole
        if key.endswith(".json"):
            json.loads(store.read_text(key))
    assert not [k for k in store.list("") if ".amtmp-" in k]  # listings never show temporaries
    folders = {k.split("/")[1] for k in store.list("mixtures")}
    if moment == "publishing":
        (folder,) = folders  # written up to the manifest ...
        with pytest.raises(StorageError, match="publish did not finish"):  # ... and not taken for a mixture
            read_published_mixture(store.uri(f"mixtures/{folder}/mixture.json"))
        assert not store.exists("mixtures/latest.json")
    else:
        assert not folders

    os.environ["AUTOMIXER_LEASE_TTL_S"] = "2"  # the dead run's leases expire quickly
    try:
        out = remix_flow(RunConfig.model_validate(json.loads(cfg.model_dump_json())))
    finally:
        del os.environ["AUTOMIXER_LEASE_TTL_S"]
    after = _finished(store)
    counts = out["counts"]
    assert counts["evaluations"] == len(after["evaluations"] - before["evaluations"])
    assert counts["evaluations"] == 2 * len(BENCHES) - len(before["evaluations"])
    assert counts["queries"] == len(after["queries"] - before["queries"])
    scored_before = len(before["scores"]) // len(BENCHES)  # one file per (benchmark, shard)
    assert counts["shards_scored"] == len(after["scores"]) // len(BENCHES) - scored_before
    assert read_published_mixture(out["uri"]).id == out["id"]
    assert store.read_json("mixtures/latest.json")["id"] == out["id"]
