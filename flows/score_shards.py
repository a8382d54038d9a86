"""Flow ``score-shards``: the scoring unit (one checkpoint × a batch of shards), deployable on a GPU pool."""

from __future__ import annotations

from typing import Any

from prefect import flow

from automixer_core.config import RunConfig
from automixer_core.errors import ConfigError
from tasks.influence import score_task
from tasks.naming import scoring_name


@flow(name="score-shards", flow_run_name=scoring_name("score"))
def score_shards_flow(
    config: RunConfig, checkpoint: dict[str, Any], query: dict[str, Any], shards: list[dict[str, Any]]
) -> dict[str, Any]:
    """Score ``shards`` at ``checkpoint`` against the query vectors named in ``query`` (keys in the store).

    Idempotent: shards already in the store are not scored again. Holds one slot of the GPU
    concurrency limit while scoring when ``config.execution.gpu_concurrency`` is set. Returns
    ``{"keys", "computed", "busy"}`` as :func:`tasks.influence.score_task` does.
    """
    if config.corpus is None:
        raise ConfigError("The run config has no corpus section", fix="add corpus: {uri: ...}")
    return score_task(
        config.store,
        checkpoint,
        query,
        shards,
        config.influence,
        config.corpus,
        config.evaluation.device,
        config.execution.gpu_limit,
    )
