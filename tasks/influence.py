"""Query vectors per artifact checkpoint, and per-shard influence scores (DESIGN §1.3, §2)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import time
from typing import Any

import pandas as pd
import torch
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from automixer_core.benchmarks import BenchmarkSpec
from automixer_core.config import CorpusConfig
from automixer_core.evaluation import gold_pairs
from automixer_core.influence import InfluenceConfig, QueryVectors, build_query_vectors, score_documents
from automixer_core.leases import unit_lease
from automixer_core.store import Store
from tasks.corpus import shard_documents
from tasks.evaluate import cached_benchmark
from tasks.keys import lease_name, query_key, score_key
from tasks.models import exclusive_model, resolve_device
from tasks.naming import scoring_name

SCORE_PREFIX = "score__"


def hessian_sample(shards: list[dict[str, Any]], n: int, seed: int = 0) -> list[tuple[str, int]]:
    """A seeded sample of ``n`` (shard digest, row) positions across the whole corpus (DataInf's Hessian sample)."""
    positions = [(s["digest"], r) for s in shards for r in range(s["start"], s["stop"])]
    rng = random.Random(seed)
    return sorted(rng.sample(positions, min(n, len(positions))))


def query_hash(
    influence: InfluenceConfig,
    benchmark_digest: str,
    hessian: list[tuple[str, int]],
    max_doc_chars: int | None,
) -> str:
    """Digest of everything one benchmark's query vector (and so its scores) depends on besides the
    checkpoint and the shard."""
    payload = {
        "influence": influence.model_dump(
            mode="json",
            exclude={
                "batch_size",
                "sort_buffer",
                "chunk_mb",
                "padding_side",
                "norm_method",
                "compute_grad_norm",
                "hessian_seed",  # the sample's positions below name the documents it drew
            },
        ),
        "benchmark": benchmark_digest,
        "hessian": hessian if influence.estimator == "datainf" else [],
        "max_doc_chars": max_doc_chars,
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
    hessian: list[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """Build (or find) the query vector of each benchmark that chose this checkpoint.

    ``hessian``: DataInf's Hessian sample (:func:`hessian_sample` of the whole corpus), where the
    caller drew it already; ``shards`` then needs to hold only the shards it names (a unit shipped
    to a worker carries those, not the whole corpus's list).

    Vectors are stored one per (checkpoint, benchmark), so a benchmark moving to another artifact
    checkpoint never invalidates the others; the missing ones are built together (one Hessian pass).
    Returns ``{"hashes": {bench: hash}, "keys": {bench: key}, "computed": n, "parameter_fraction": f}``
    (the share of the model's parameters the layer selection covers; None for vectors stored
    before it was recorded).
    """
    store = Store(store_uri)
    loaded = {spec.name: cached_benchmark(spec) for spec in benchmarks}
    if hessian is None:
        hessian = corpus_hessian(shards, influence)
    hessian = [(str(d), int(r)) for d, r in hessian]  # pairs come back as lists from JSON
    hashes, keys = query_outputs(checkpoint, loaded, influence, corpus, hessian)
    missing = [name for name, key in keys.items() if not store.exists(key)]
    lease = contextlib.ExitStack()
    if missing:
        mine = lease.enter_context(
            unit_lease(store, lease_name(*keys.values()), lambda: all(store.exists(k) for k in keys.values()))
        )
        missing = [name for name, key in keys.items() if not store.exists(key)] if mine else []
    with lease:
        _build_missing(store, checkpoint, loaded, missing, keys, influence, corpus, shards, hessian, device)
    return query_result(store, hashes, keys, len(missing))


def corpus_hessian(shards: list[dict[str, Any]], influence: InfluenceConfig) -> list[tuple[str, int]]:
    """DataInf's Hessian sample of the corpus (empty for other estimators)."""
    if influence.estimator != "datainf":
        return []
    return hessian_sample(shards, influence.hessian_samples, influence.hessian_seed)


def query_outputs(
    checkpoint: dict[str, Any],
    benchmarks: dict[str, Any],
    influence: InfluenceConfig,
    corpus: CorpusConfig,
    hessian: list[tuple[str, int]],
) -> tuple[dict[str, str], dict[str, str]]:
    """The query hash and store key of each benchmark's vector at ``checkpoint`` (``benchmarks``:
    name → loaded benchmark), computed without building anything."""
    hashes = {
        name: query_hash(influence, b.digest, hessian, corpus.max_doc_chars)
        for name, b in sorted(benchmarks.items())
    }
    return hashes, {name: query_key(checkpoint["fingerprint"], name, h) for name, h in hashes.items()}


def query_result(store: Store, hashes: dict[str, str], keys: dict[str, str], computed: int) -> dict[str, Any]:
    """What :func:`query_task` returns, once every vector is in the store: ``{"hashes", "keys",
    "computed", "parameter_fraction"}`` (the layer selection's share of the model's parameters)."""
    with store.open(next(iter(keys.values()))) as f:
        fraction = QueryVectors.read_metadata(f).get("parameter_fraction")
    return {
        "hashes": hashes,
        "keys": keys,
        "computed": computed,
        "parameter_fraction": float(fraction) if fraction is not None else None,
    }


def _build_missing(
    store: Store,
    checkpoint: dict[str, Any],
    loaded: dict[str, Any],
    missing: list[str],
    keys: dict[str, str],
    influence: InfluenceConfig,
    corpus: CorpusConfig,
    shards: list[dict[str, Any]],
    hessian: list[tuple[str, int]],
    device: str,
) -> None:
    if missing:
        with exclusive_model(checkpoint, resolve_device(device)) as (model, tokenizer):
            queries = {name: gold_pairs(tokenizer, loaded[name].query_instances) for name in missing}
            hessian_docs = _hessian_docs(corpus, shards, hessian, tokenizer) if hessian else None
            optimizer_state = None
            names_in_order = None
            if influence.adam:
                path = Store(checkpoint["uri"]).local_dir("") / "optimizer.pt"
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
                benchmark_digests={name: loaded[name].digest for name in missing},
            )
        for name in missing:
            store.write_bytes(keys[name], vectors.select([name]).to_bytes())
        get_run_logger().info(
            "Query vectors for %s at %s (%s)", missing, checkpoint["name"], influence.estimator
        )


def _hessian_docs(
    corpus: CorpusConfig, shards: list[dict[str, Any]], sample: list[tuple[str, int]], tokenizer: Any
) -> list[list[int]]:
    wanted: dict[str, set[int]] = {}
    for digest, row in sample:
        wanted.setdefault(digest, set()).add(row)
    docs: list[list[int]] = []
    for shard in shards:
        rows = wanted.get(shard["digest"])
        if rows:
            for i, doc in enumerate(shard_documents(corpus, shard)):
                if shard["start"] + i in rows:
                    docs.append(tokenizer(doc.text[: corpus.max_doc_chars])["input_ids"])
    return docs


def unit_score_keys(
    checkpoint: dict[str, Any], query: dict[str, Any], shards: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """Store keys of a scoring unit's outputs: benchmark → one parquet key per shard, in shard order."""
    fp = checkpoint["fingerprint"]
    return {b: [score_key(fp, b, h, s["digest"]) for s in shards] for b, h in query["hashes"].items()}


@task(
    name="score-shards",
    cache_policy=NO_CACHE,
    task_run_name=scoring_name("score"),
)
def score_task(
    store_uri: str,
    checkpoint: dict[str, Any],
    query: dict[str, Any],
    shards: list[dict[str, Any]],
    influence: InfluenceConfig,
    corpus: CorpusConfig,
    device: str = "auto",
    gpu_limit: str | None = None,
) -> dict[str, Any]:
    """Score the documents of ``shards`` against the checkpoint's query vectors.

    One forward and one backward per batch gives every missing benchmark's column at once; the
    result is stored one parquet per (checkpoint, benchmark, shard) with columns
    ``doc_id, domain, n_tokens, loss, score__<benchmark>``. With ``gpu_limit``, the scoring holds
    one slot of that Prefect global concurrency limit (which must exist) while it runs.

    Returns ``{"keys": {bench: [key per shard]}, "computed": shard scorings run, "busy": [start,
    end] epoch seconds while scoring (None when nothing was missing)}``.
    """
    store = Store(store_uri)
    keys = unit_score_keys(checkpoint, query, shards)
    every = [k for ks in keys.values() for k in ks]
    if all(store.exists(k) for k in every):
        return {"keys": keys, "computed": 0, "busy": None}
    with unit_lease(store, lease_name(*every), lambda: all(store.exists(k) for k in every)) as mine:
        if not mine:  # another run scored the unit while this one waited
            return {"keys": keys, "computed": 0, "busy": None}
        return _score_unit(store, keys, checkpoint, query, shards, influence, corpus, device, gpu_limit)


def _score_unit(
    store: Store,
    keys: dict[str, list[str]],
    checkpoint: dict[str, Any],
    query: dict[str, Any],
    shards: list[dict[str, Any]],
    influence: InfluenceConfig,
    corpus: CorpusConfig,
    device: str,
    gpu_limit: str | None,
) -> dict[str, Any]:
    computed = 0
    busy: list[float] | None = None
    vectors_cache: dict[str, QueryVectors] = {}
    with contextlib.ExitStack() as slot:
        for i, shard in enumerate(shards):
            missing = [b for b in keys if not store.exists(keys[b][i])]
            if not missing:
                continue
            if busy is None:
                if gpu_limit is not None:
                    slot.enter_context(concurrency(gpu_limit, occupy=1, strict=True))
                busy = [time.time(), 0.0]
            for b in missing:
                if b not in vectors_cache:
                    vectors_cache[b] = QueryVectors.from_bytes(store.read_bytes(query["keys"][b]))
            vectors = QueryVectors.concat([vectors_cache[b] for b in missing])
            docs = list(shard_documents(corpus, shard))
            texts = ((d.id, d.text[: corpus.max_doc_chars]) for d in docs)
            with exclusive_model(checkpoint, resolve_device(device)) as (model, tokenizer):
                result = score_documents(
                    model, ((d, tokenizer(t)["input_ids"]) for d, t in texts), vectors, influence
                )
            base = {
                "doc_id": result.doc_ids,
                "domain": [d.group for d in docs],
                "n_tokens": result.n_tokens,
                "loss": result.loss,
            }
            for j, name in enumerate(result.query_names):
                buf = io.BytesIO()
                pd.DataFrame({**base, f"{SCORE_PREFIX}{name}": result.scores[:, j]}).to_parquet(
                    buf, index=False
                )
                store.write_bytes(keys[name][i], buf.getvalue())
            computed += 1
        if busy is not None:
            busy[1] = time.time()
    return {"keys": keys, "computed": computed, "busy": busy}
