"""Flow ``query-vectors``: one artifact checkpoint's query vectors, deployable on a GPU pool."""

from __future__ import annotations

from typing import Any

from prefect import flow

from automixer_core.config import RunConfig
from automixer_core.errors import ConfigError
from tasks.influence import query_task


@flow(name="query-vectors", flow_run_name="queries @ {checkpoint[name]}")
def query_vectors_flow(
    config: RunConfig,
    checkpoint: dict[str, Any],
    benchmarks: list[str],
    shards: list[dict[str, Any]],
    hessian: list[list[Any]],
) -> dict[str, Any]:
    """Build the query vectors of ``benchmarks`` (names of the config's benchmarks) at ``checkpoint``.

    ``hessian``: DataInf's Hessian sample as ``[shard digest, row]`` pairs, drawn by the remix from
    the whole corpus; ``shards``: the shards it names. Idempotent: vectors already in the store are
    not built again. Returns what :func:`tasks.influence.query_task` returns.
    """
    if config.corpus is None:
        raise ConfigError("The run config has no corpus section", fix="add corpus: {uri: ...}")
    specs = {s.name: s for s in config.benchmarks.specs()}
    unknown = sorted(set(benchmarks) - set(specs))
    if unknown:
        raise ConfigError(
            f"Benchmarks {unknown} are not in the run config",
            expected=f"some of {sorted(specs)}",
            fix="pass the config the remix ran with",
        )
    return query_task(
        config.store,
        checkpoint,
        [specs[b] for b in benchmarks],
        config.influence,
        config.corpus,
        shards,
        config.evaluation.device,
        hessian=[(str(d), int(r)) for d, r in hessian],
    )
