"""The scoring fan-out: (checkpoint, shard batch) units run here, on a Prefect work pool, or on Dask.

Every mode runs the same task (:func:`tasks.influence.score_task`) on the same units and writes
the same store keys, so the published mixture does not depend on the mode (DESIGN §4):

- ``local``: tasks on the remix flow's own task runner, in this process.
- ``workpool``: one run of the ``score-shards`` deployment per unit (:mod:`flows.workpool`),
  created with an idempotency key built from the unit's digests (submitting twice gives the same
  run), awaited, and read back from the shared store.
- ``dask``: tasks on a Dask cluster through prefect-dask, each asking for one ``GPU`` resource,
  so a worker declaring ``--resources GPU=1`` runs one unit at a time.

A unit whose outputs are all in the store is not submitted at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import automixer_core
from automixer_core.config import RunConfig
from automixer_core.errors import ExecutionError
from automixer_core.store import Store
from flows.workpool import OnDone, PoolUnit, run_all_on_workpool
from tasks.influence import score_task, unit_score_keys


@dataclass(frozen=True)
class ScoringUnit:
    """One checkpoint × one batch of shards: the unit of scoring, caching and submission."""

    checkpoint: dict[str, Any]
    query: dict[str, Any]
    shards: list[dict[str, Any]]

    def keys(self) -> dict[str, list[str]]:
        return unit_score_keys(self.checkpoint, self.query, self.shards)

    def missing_shards(self, store: Store) -> int:
        """How many of the unit's shards lack at least one benchmark's scores in ``store``."""
        keys = self.keys()
        return sum(any(not store.exists(k[i]) for k in keys.values()) for i in range(len(self.shards)))

    def digest(self, store_uri: str) -> str:
        """Digest of what the unit computes and where: checkpoint, query vectors, shards, code
        version and the store its outputs go to (the same work for another store is another run)."""
        payload = {
            "store": store_uri,
            "checkpoint": self.checkpoint["fingerprint"],
            "queries": self.query["hashes"],
            "shards": [s["digest"] for s in self.shards],
            "code": automixer_core.__version__,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def ensure_gpu_limit(config: RunConfig) -> None:
    """Create or update the Prefect global concurrency limit of ``execution.gpu_concurrency``."""
    if not config.execution.gpu_concurrency:
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            config.execution.gpu_limit_name, config.execution.gpu_concurrency
        )


def _task_parameters(config: RunConfig, unit: ScoringUnit) -> dict[str, Any]:
    assert config.corpus is not None
    return {
        "store_uri": config.store,
        "checkpoint": unit.checkpoint,
        "query": unit.query,
        "shards": unit.shards,
        "influence": config.influence,
        "corpus": config.corpus,
        "device": config.evaluation.device,
        "gpu_limit": config.execution.gpu_limit,
    }


def run_units(config: RunConfig, units: list[ScoringUnit], on_done: OnDone) -> list[dict[str, Any]]:
    """Score every unit in the mode of ``config.execution``; one ``{"keys", "computed"}`` per unit.

    Raises:
        ExecutionError: the engine cannot be reached, or units failed (the others are kept).
    """
    ensure_gpu_limit(config)
    mode = config.execution.mode
    if mode == "workpool":
        return _run_on_workpool(config, units, on_done)
    if mode == "dask":
        return _run_on_dask(config, units, on_done)
    futures = [score_task.submit(**_task_parameters(config, u)) for u in units]
    results = []
    for f in futures:
        results.append(f.result())
        on_done()
    return results


# --------------------------------------------------------------------------------------------------
# dask


def _run_on_dask(config: RunConfig, units: list[ScoringUnit], on_done: OnDone) -> list[dict[str, Any]]:
    shipped = worker_config(config)  # Dask workers run in folders of their own
    return dask_map(config, score_task, [_task_parameters(shipped, u) for u in units], on_done)


def dask_map(config: RunConfig, task: Any, parameters: list[dict[str, Any]], on_done: OnDone) -> list[Any]:
    """Run ``task`` once per parameter dict on the Dask cluster at ``execution.dask_address``, each
    asking for one ``GPU`` resource (a worker declaring ``--resources GPU=1`` runs one at a time);
    results in order. Shared by the scoring and the validation fan-outs.

    Raises:
        ExecutionError: the scheduler cannot be reached, or no worker declares a GPU resource.
    """
    import dask
    from prefect_dask import DaskTaskRunner

    address = str(config.execution.dask_address)
    with DaskTaskRunner(address=address, client_kwargs={"timeout": "10s"}) as runner:
        try:
            workers = runner.client.scheduler_info(n_workers=-1).get("workers", {})
        except (OSError, TimeoutError) as exc:
            raise ExecutionError(
                f"Cannot reach the Dask scheduler at {address!r}: {type(exc).__name__}: {exc}",
                fix="start it (dask scheduler) or correct execution.dask_address",
            ) from None
        gpus = sum(float(w.get("resources", {}).get("GPU", 0)) for w in workers.values())
        if gpus < 1:
            raise ExecutionError(
                f"No worker of the Dask cluster at {address!r} declares a GPU resource "
                f"({len(workers)} workers); a task would wait forever",
                fix=f"start one worker per GPU with: dask worker {address} --nworkers 1 --resources GPU=1",
            )
        with dask.annotate(resources={"GPU": 1}):
            futures = [runner.submit(task, parameters=p) for p in parameters]
        results = []
        for f in futures:
            results.append(f.result())
            on_done()
        return results


# --------------------------------------------------------------------------------------------------
# workpool


def worker_config(config: RunConfig) -> RunConfig:
    """``config`` with local relative paths made absolute, for flows running in another folder."""

    def absolute(uri: str) -> str:
        return uri if "://" in uri or Path(uri).is_absolute() else str(Path(uri).resolve())

    update: dict[str, Any] = {"store": absolute(config.store)}
    if config.corpus is not None:
        update["corpus"] = config.corpus.model_copy(update={"uri": absolute(config.corpus.uri)})
    update["checkpoints"] = config.checkpoints.model_copy(update={"uri": absolute(config.checkpoints.uri)})
    return config.model_copy(update=update)


def pool_unit(config: RunConfig, unit: ScoringUnit, store: Store) -> PoolUnit:
    """The unit as one run of the ``score-shards`` deployment (parameters: the shipped config)."""
    return PoolUnit(
        key=f"automixer-score-{unit.digest(config.store)}",
        parameters={
            "config": worker_config(config).model_dump(mode="json"),
            "checkpoint": unit.checkpoint,
            "query": unit.query,
            "shards": unit.shards,
        },
        missing=lambda: unit.missing_shards(store),
        result=lambda computed: {"keys": unit.keys(), "computed": computed},
    )


def _run_on_workpool(config: RunConfig, units: list[ScoringUnit], on_done: OnDone) -> list[dict[str, Any]]:
    store = Store(config.store)
    return run_all_on_workpool(
        config.execution.deployment,
        [pool_unit(config, u, store) for u in units],
        store=config.store,
        tags=["score-shards"],
        poll_s=config.execution.poll_s,
        timeout_s=config.execution.timeout_s,
        on_done=on_done,
        what="scoring",
        rerun="re-run remix: shards already scored are kept, failed units get a new run",
    )
