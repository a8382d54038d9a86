"""Evaluation of one checkpoint on one benchmark, written once to a content-addressed key."""

from __future__ import annotations

import functools
import io
import math
import time
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from automixer_core.benchmarks import Benchmark, BenchmarkSpec, benchmark_data_digest, load_benchmark
from automixer_core.config import section_hash
from automixer_core.evaluation import EvalConfig, evaluate_benchmark
from automixer_core.leases import unit_lease
from automixer_core.store import Store
from tasks.keys import eval_key, examples_key, lease_name
from tasks.models import exclusive_model, nonfinite_names, resolve_device


@functools.lru_cache(maxsize=32)
def _load_benchmark(spec_json: str, data_digest: str) -> Benchmark:
    return load_benchmark(BenchmarkSpec.model_validate_json(spec_json))


def cached_benchmark(spec: BenchmarkSpec) -> Benchmark:
    """Benchmarks are read and validated once per process and data version (files are re-hashed)."""
    return _load_benchmark(spec.model_dump_json(), benchmark_data_digest(spec))


def eval_config_hash(config: EvalConfig) -> str:
    """Only the fields that change the numbers (not batch size or device)."""
    return section_hash(config, exclude={"batch_size", "device"})


@task(
    name="evaluate",
    cache_policy=NO_CACHE,
    task_run_name="evaluate {benchmark.name} @ {checkpoint[name]}",
)
def evaluate_task(
    store_uri: str, checkpoint: dict[str, Any], benchmark: BenchmarkSpec, evaluation: EvalConfig
) -> dict[str, Any]:
    """Evaluate one checkpoint on one benchmark unless the store already holds the result.

    Returns ``{"key", "computed"}``: the summary key and whether a model ran.
    """
    store = Store(store_uri)
    bench = cached_benchmark(benchmark)
    key = eval_key(checkpoint["fingerprint"], bench.name, bench.digest, eval_config_hash(evaluation))
    if store.exists(key):
        return {"key": key, "computed": False}
    with unit_lease(store, lease_name(key), lambda: store.exists(key)) as mine:
        if not mine:  # another run evaluated it while this one waited
            return {"key": key, "computed": False}
        return _evaluate(store, key, checkpoint, bench, evaluation)


def _evaluate(
    store: Store, key: str, checkpoint: dict[str, Any], bench: Benchmark, evaluation: EvalConfig
) -> dict[str, Any]:
    device = resolve_device(evaluation.device)
    with exclusive_model(checkpoint, device) as (model, tokenizer):
        nonfinite = nonfinite_names(checkpoint, model)
        if nonfinite:
            return _diverged(
                store,
                key,
                checkpoint,
                bench,
                f"non-finite weights in {len(nonfinite)} parameter(s), e.g. {nonfinite[:3]}",
            )
        t0 = time.perf_counter()
        result = evaluate_benchmark(
            model, tokenizer, bench.eval_instances, config=evaluation.model_copy(update={"device": device})
        )
        seconds = time.perf_counter() - t0
    if not math.isfinite(result.gold_ll):
        return _diverged(store, key, checkpoint, bench, "a non-finite benchmark loss (gold log-likelihood)")
    buf = io.BytesIO()
    result.per_example.to_parquet(buf, index=False)
    store.write_bytes(examples_key(key), buf.getvalue())
    summary = {
        **result.metrics(),
        **_which(checkpoint, bench),
        "diverged": False,
        "seconds": seconds,
        "request_tokens": result.stats.request_tokens,
        "forward_tokens": result.stats.forward_tokens,
    }
    store.write_json(key, summary)  # written last: its presence means the evaluation is complete
    get_run_logger().info(
        "%s @ %s: acc=%.4f acc_norm=%.4f (n=%d, %.1fs)",
        bench.name,
        checkpoint["name"],
        result.acc,
        result.acc_norm,
        result.n,
        seconds,
    )
    return {"key": key, "computed": True}


def _which(checkpoint: dict[str, Any], bench: Benchmark) -> dict[str, Any]:
    """The fields of an evaluation summary that say what was evaluated."""
    return {
        "checkpoint": checkpoint["name"],
        "checkpoint_uri": checkpoint["uri"],
        "step": checkpoint["step"],
        "fingerprint": checkpoint["fingerprint"],
        "benchmark": bench.name,
        "benchmark_digest": bench.digest,
        "eval_split": bench.eval_split,
    }


def _diverged(
    store: Store, key: str, checkpoint: dict[str, Any], bench: Benchmark, why: str
) -> dict[str, Any]:
    """Record a diverged checkpoint: every metric NaN, ``diverged`` true and the reason. Selection
    never chooses it; the evaluation table and the selection's reasons say why."""
    nan = float("nan")
    summary = {
        "acc": nan,
        "acc_stderr": nan,
        "acc_norm": nan,
        "acc_norm_stderr": nan,
        "gold_ll": nan,
        "gold_ll_stderr": nan,
        "n": 0,
        **_which(checkpoint, bench),
        "diverged": True,
        "diverged_reason": why,
        "seconds": 0.0,
        "request_tokens": 0,
        "forward_tokens": 0,
    }
    store.write_json(key, summary)
    get_run_logger().warning(
        "%s @ %s: diverged (%s); it will not be an artifact model", bench.name, checkpoint["name"], why
    )
    return {"key": key, "computed": True}
