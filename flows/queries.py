"""The query-vector fan-out: one unit per artifact checkpoint (the vectors of every benchmark that
chose it, built in one Hessian pass), run here, on a Prefect work pool, or on Dask.

Every mode runs :func:`tasks.influence.query_task` on the same units and writes the same store
keys (DESIGN §4). The Hessian sample is drawn once, here, from the whole corpus; a unit carries
the sample and only the shards it names, not the corpus's whole shard list. A unit whose vectors
are all in the store is not submitted at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import automixer_core
from automixer_core.benchmarks import BenchmarkSpec
from automixer_core.config import RunConfig
from automixer_core.store import Store
from flows.scoring import dask_map, worker_config
from flows.workpool import PoolUnit, run_all_on_workpool
from tasks.evaluate import cached_benchmark
from tasks.influence import corpus_hessian, query_outputs, query_result, query_task


@dataclass(frozen=True)
class QueryUnit:
    """One artifact checkpoint and the benchmarks that chose it."""

    checkpoint: dict[str, Any]
    benchmarks: list[BenchmarkSpec]

    def outputs(
        self, config: RunConfig, hessian: list[tuple[str, int]]
    ) -> tuple[dict[str, str], dict[str, str]]:
        assert config.corpus is not None
        loaded = {s.name: cached_benchmark(s) for s in self.benchmarks}
        return query_outputs(self.checkpoint, loaded, config.influence, config.corpus, hessian)

    def digest(self, store_uri: str, hashes: dict[str, str]) -> str:
        """Digest of what the unit builds and where (checkpoint, query hashes, store, code)."""
        payload = {
            "store": store_uri,
            "checkpoint": self.checkpoint["fingerprint"],
            "queries": hashes,
            "code": automixer_core.__version__,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def build_queries(
    config: RunConfig, units: list[QueryUnit], shards: list[dict[str, Any]], on_done: Callable[[], None]
) -> list[dict[str, Any]]:
    """Build (or find) every unit's query vectors in the mode of ``config.execution``; one
    :func:`~tasks.influence.query_task` result per unit, in order.

    Raises:
        ExecutionError: the engine cannot be reached, or units failed (the others are kept).
    """
    assert config.corpus is not None
    hessian = corpus_hessian(shards, config.influence)
    named = {d for d, _ in hessian}
    hessian_shards = [s for s in shards if s["digest"] in named]
    mode = config.execution.mode
    if mode == "workpool":
        store = Store(config.store)
        return run_all_on_workpool(
            config.execution.query_deployment,
            [_pool_unit(config, u, hessian, hessian_shards, store) for u in units],
            store=config.store,
            tags=["query-vectors"],
            poll_s=config.execution.poll_s,
            timeout_s=config.execution.timeout_s,
            on_done=on_done,
            what="query-vector",
            rerun="re-run remix: vectors already built are kept, failed units get a new run",
        )
    params = [_task_parameters(config, u, hessian, hessian_shards) for u in units]
    if mode == "dask":
        shipped = worker_config(config)
        return dask_map(
            config,
            query_task,
            [_task_parameters(shipped, u, hessian, hessian_shards) for u in units],
            on_done,
        )
    results = []
    for p in params:  # one after the other: each holds its checkpoint's model
        results.append(query_task(**p))
        on_done()
    return results


def _task_parameters(
    config: RunConfig, unit: QueryUnit, hessian: list[tuple[str, int]], shards: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "store_uri": config.store,
        "checkpoint": unit.checkpoint,
        "benchmarks": unit.benchmarks,
        "influence": config.influence,
        "corpus": config.corpus,
        "shards": shards,
        "device": config.evaluation.device,
        "hessian": hessian,
    }


def _pool_unit(
    config: RunConfig,
    unit: QueryUnit,
    hessian: list[tuple[str, int]],
    shards: list[dict[str, Any]],
    store: Store,
) -> PoolUnit:
    """The unit as one run of the ``query-vectors`` deployment."""
    hashes, keys = unit.outputs(config, hessian)
    return PoolUnit(
        key=f"automixer-queries-{unit.digest(config.store, hashes)}",
        parameters={
            "config": worker_config(config).model_dump(mode="json"),
            "checkpoint": unit.checkpoint,
            "benchmarks": [s.name for s in unit.benchmarks],
            "shards": shards,
            "hessian": [list(h) for h in hessian],
        },
        missing=lambda: sum(not store.exists(k) for k in keys.values()),
        result=lambda computed: query_result(store, hashes, keys, computed),
    )
