"""Query vectors per artifact checkpoint, and per-shard influence scores (DESIGN §1.3, §2)."""

from __future__ import annotations

import hashlib
import io
import json
import random
from typing import Any

import pandas as pd
import torch
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from automixer_core.benchmarks import BenchmarkSpec
from automixer_core.config import CorpusConfig
from automixer_core.evaluation import gold_pairs
from automixer_core.influence import InfluenceConfig, QueryVectors, build_query_vectors, score_documents
from automixer_core.store import Store
from tasks.corpus import shard_documents
from tasks.evaluate import cached_benchmark
from tasks.keys import query_key, score_key
from tasks.models import cached_model, resolve_device

SCORE_PREFIX = "score__"


def hessian_sample(shards: list[dict[str, Any]], n: int, seed: int = 0) -> list[tuple[str, int]]:
    """A seeded sample of ``n`` (shard digest, row) positions across the whole corpus (DataInf's Hessian sample)."""
    positions = [(s["digest"], r) for s in shards for r in range(s["start"], s["stop"])]
    rng = random.Random(seed)
    return sorted(rng.sample(positions, min(n, len(positions))))


def query_hash(
    influence: InfluenceConfig, benchmark_digests: dict[str, str], hessian: list[tuple[str, int]]
) -> str:
    """Digest of everything a checkpoint's query vectors depend on besides the checkpoint itself."""
    payload = {
        "influence": influence.model_dump(
            mode="json", exclude={"batch_size", "sort_buffer", "chunk_mb", "padding_side", "norm_method"}
        ),
        "benchmarks": sorted(benchmark_digests.items()),
        "hessian": hessian if influence.estimator == "datainf" else [],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _optimizer_param_names(state: dict[str, Any]) -> list[str] | None:
    """Parameter names in optimizer index order, where the state records them (``param_names``)."""
    pairs: list[tuple[int, str]] = []
    for g in state.get("param_groups", []):
        names = g.get("param_names")
        if names is None:
            return None
        pairs.extend(zip(g["params"], names, strict=True))
    return [n for _, n in sorted(pairs)] if pairs else None


@task(name="query-vectors", cache_policy=NO_CACHE, task_run_name="queries @ {checkpoint[name]}")
def query_task(
    store_uri: str,
    checkpoint: dict[str, Any],
    benchmarks: list[BenchmarkSpec],
    influence: InfluenceConfig,
    corpus: CorpusConfig,
    shards: list[dict[str, Any]],
    device: str = "auto",
) -> dict[str, Any]:
    """Build (or find) the query vectors of the benchmarks that chose this checkpoint.

    Returns ``{"key", "hash", "names", "computed"}``.
    """
    store = Store(store_uri)
    loaded = {spec.name: cached_benchmark(spec) for spec in benchmarks}
    digests = {b.name: b.digest for b in loaded.values()}
    hessian = hessian_sample(shards, influence.hessian_samples) if influence.estimator == "datainf" else []
    qhash = query_hash(influence, digests, hessian)
    key = query_key(checkpoint["fingerprint"], qhash)
    names = sorted(digests)
    if store.exists(key):
        return {"key": key, "hash": qhash, "names": names, "computed": False}
    dev = resolve_device(device)
    model, tokenizer = cached_model(checkpoint, dev)
    queries = {name: gold_pairs(tokenizer, loaded[name].query_instances) for name in names}
    hessian_docs = None
    if hessian:
        wanted: dict[str, set[int]] = {}
        for digest, row in hessian:
            wanted.setdefault(digest, set()).add(row)
        hessian_docs = []
        for shard in shards:
            rows = wanted.get(shard["digest"])
            if rows:
                for i, doc in enumerate(shard_documents(corpus, shard)):
                    if shard["start"] + i in rows:
                        hessian_docs.append(tokenizer(doc.text)["input_ids"])
    optimizer_state = None
    names_in_order = None
    if influence.adam:
        local = Store(checkpoint["uri"]).local_dir("")
        path = local / "optimizer.pt"
        if path.exists():
            optimizer_state = torch.load(path, map_location="cpu", weights_only=True)
            names_in_order = _optimizer_param_names(optimizer_state)
    vectors = build_query_vectors(
        model,
        queries,
        influence,
        hessian_docs=hessian_docs,
        optimizer_state=optimizer_state,
        optimizer_param_names=names_in_order,
        checkpoint_fingerprint=checkpoint["fingerprint"],
        benchmark_digests=digests,
    )
    store.write_bytes(key, vectors.to_bytes())
    get_run_logger().info("Query vectors for %s at %s: %s", names, checkpoint["name"], influence.estimator)
    return {"key": key, "hash": qhash, "names": names, "computed": True}


@task(
    name="score-shards",
    cache_policy=NO_CACHE,
    task_run_name="score {checkpoint[name]} shards {shards[0][digest]}+",
)
def score_task(
    store_uri: str,
    checkpoint: dict[str, Any],
    query: dict[str, Any],
    shards: list[dict[str, Any]],
    influence: InfluenceConfig,
    corpus: CorpusConfig,
    device: str = "auto",
) -> dict[str, Any]:
    """Score every document of ``shards`` against the checkpoint's query vectors, one parquet per shard.

    Columns: ``doc_id, domain, n_tokens, loss, score__<benchmark>...``. Returns the keys and how
    many shards were computed (the others were already in the store).
    """
    store = Store(store_uri)
    keys = [score_key(checkpoint["fingerprint"], query["hash"], s["digest"]) for s in shards]
    todo = [(s, k) for s, k in zip(shards, keys, strict=True) if not store.exists(k)]
    if todo:
        model, tokenizer = cached_model(checkpoint, resolve_device(device))
        vectors = QueryVectors.from_bytes(store.read_bytes(query["key"]))
        for shard, key in todo:
            docs = list(shard_documents(corpus, shard))
            tokenized = ((d.id, tokenizer(d.text)["input_ids"]) for d in docs)
            result = score_documents(model, tokenized, vectors, influence)
            frame = pd.DataFrame(
                {
                    "doc_id": result.doc_ids,
                    "domain": [d.group for d in docs],
                    "n_tokens": result.n_tokens,
                    "loss": result.loss,
                    **{
                        f"{SCORE_PREFIX}{name}": result.scores[:, j]
                        for j, name in enumerate(result.query_names)
                    },
                }
            )
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            store.write_bytes(key, buf.getvalue())
    return {"keys": keys, "computed": len(todo)}
