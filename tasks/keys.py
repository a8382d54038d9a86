"""Deterministic store keys, built from the digests of what produced each artifact (DESIGN §3)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import automixer_core
from automixer_core.config import NOT_IN_IDENTITY, RunConfig, section_hash

CODE_VERSION = automixer_core.__version__


def eval_key(checkpoint_fingerprint: str, benchmark: str, benchmark_digest: str, eval_hash: str) -> str:
    """Summary JSON of one (checkpoint, benchmark) evaluation; the per-example parquet sits beside it."""
    return (
        f"evals/{checkpoint_fingerprint}/{benchmark}/{benchmark_digest[:12]}-{eval_hash}-v{CODE_VERSION}.json"
    )


def examples_key(summary_key: str) -> str:
    return summary_key.removesuffix(".json") + ".examples.parquet"


def report_key(run_digest: str, name: str) -> str:
    return f"reports/evaluation/{run_digest}/{name}"


def query_key(checkpoint_fingerprint: str, benchmark: str, query_hash: str) -> str:
    """One benchmark's query vector at one checkpoint (safetensors)."""
    return f"queries/{checkpoint_fingerprint}/{benchmark}/{query_hash}-v{CODE_VERSION}.safetensors"


def score_key(checkpoint_fingerprint: str, benchmark: str, query_hash: str, shard_digest: str) -> str:
    """One benchmark's influence scores of one corpus shard at one checkpoint (parquet)."""
    return f"scores/{checkpoint_fingerprint}/{benchmark}/{query_hash}-v{CODE_VERSION}/{shard_digest}.parquet"


def mixture_key(mixture_id: str, name: str) -> str:
    return f"mixtures/{mixture_id}/{name}"


LATEST_KEY = "mixtures/latest.json"


def lease_name(*keys: str) -> str:
    """The lease of the unit whose outputs are ``keys`` (see automixer_core.leases)."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def inputs_digest(
    config: RunConfig,
    checkpoints: list[dict[str, Any]],
    benchmark_digests: list[str],
    shards: list[dict[str, Any]],
) -> str:
    """Digest of everything a mixture depends on: checkpoint fingerprints, benchmark data, corpus
    shards, the config (less the store and the execution mode) and the code version. Equal digests mean nothing new."""
    payload = {
        "checkpoints": sorted(c["fingerprint"] for c in checkpoints),
        "benchmarks": sorted(benchmark_digests),
        "shards": [s["digest"] for s in shards],
        "config": section_hash(config, exclude=set(NOT_IN_IDENTITY)),
        "code": automixer_core.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
