"""Flow ``train-target``: one validation unit (a candidate's weights × a seed), deployable on a GPU pool."""

from __future__ import annotations

from typing import Any

from prefect import flow

from automixer_core.benchmarks import BenchmarkSpec
from automixer_core.evaluation import EvalConfig
from automixer_core.proxy import ProxyConfig
from tasks.validation import train_candidate_task


@flow(name="train-target", flow_run_name="train {candidate} seed {seed}")
def train_target_flow(
    store_uri: str,
    digest: str,
    candidate: str,
    weights: dict[str, float],
    seed: int,
    target: ProxyConfig,
    corpus_uri: str,
    benchmarks: list[BenchmarkSpec],
    evaluation: EvalConfig,
) -> dict[str, Any]:
    """Train a target proxy on ``weights`` with ``seed`` and evaluate its checkpoints, into
    ``validations/runs/<digest>/`` of the store (see :func:`tasks.validation.train_candidate_task`).

    Idempotent: a unit whose ``run.json`` is in the store trains nothing. The ``validate`` flow
    fans these runs out in ``workpool`` mode, one per (candidate, seed). Returns ``{"key", "computed"}``.
    """
    return train_candidate_task(
        store_uri, digest, candidate, weights, seed, target, corpus_uri, benchmarks, evaluation
    )
