"""Proxy training as a task."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from automixer_core.proxy import ProxyConfig, train_proxy


@task(name="train-proxy", cache_policy=NO_CACHE)
def train_proxy_task(
    config: ProxyConfig, corpus_uri: str, output_uri: str, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train a proxy LM; returns the checkpoint URIs and the run's numbers."""
    result = train_proxy(config, corpus_uri, output_uri, progress=progress, overwrite=overwrite)
    return {
        "output_uri": output_uri,
        "checkpoints": [
            {"step": c.step, "uri": c.uri, "tokens_seen": c.tokens_seen, "loss": c.loss}
            for c in result.checkpoints
        ],
        "num_params": result.num_params,
        "tokens_seen": result.tokens_seen,
        "train_seconds": result.train_seconds,
        "tokens_per_second": result.tokens_per_second,
        "final_loss": result.final_loss,
        "group_weights": result.group_weights,
    }
