"""Validation tasks: one shared tokenizer and the corpus's token counts, and one target run per
(candidate weights, seed, target config), each written once to a content-addressed key."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

import automixer_core
from automixer_core.benchmarks import BenchmarkSpec
from automixer_core.checkpoints import load_checkpoint
from automixer_core.evaluation import EvalConfig, evaluate_benchmark
from automixer_core.proxy import ProxyConfig, train_proxy
from automixer_core.proxy.train import proxy_texts, proxy_tokenizer
from automixer_core.store import Store
from automixer_core.validation.metrics import METRICS, question_metrics
from tasks.evaluate import cached_benchmark, eval_config_hash

CODE_VERSION = automixer_core.__version__


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_key(unit_digest: str, name: str) -> str:
    return f"validations/runs/{unit_digest}/{name}"


@task(name="validation-tokenizer", cache_policy=NO_CACHE)
def prepare_task(store_uri: str, corpus_uri: str, corpus_digest: str, target: ProxyConfig) -> dict[str, Any]:
    """Train the BPE tokenizer every target shares (as ``train_proxy`` would) and count each
    domain's tokens with it (each document + EOS). Written once under ``validations/tokenizers/``.

    Returns ``{"tokenizer": URI, "tokens": {domain: n}, "computed": bool}``.
    """
    store = Store(store_uri)
    fields = target.model_dump(
        include={
            "vocab_size",
            "tokenizer_docs",
            "tokenizer_max_chars",
            "text_field",
            "id_field",
            "group_field",
            "max_docs_per_group",
            "max_docs",
            "tokenizer",
        }
    )
    digest = _digest({"corpus": corpus_digest, "fields": fields, "code": CODE_VERSION})
    counts_key = f"validations/tokenizers/{digest}/token_counts.json"
    if store.exists(counts_key):
        return {
            "tokenizer": store.uri(f"validations/tokenizers/{digest}/tokenizer"),
            "tokenizer_digest": digest,
            **store.read_json(counts_key),
            "computed": False,
        }
    texts = proxy_texts(target, corpus_uri)
    tok = proxy_tokenizer(target, texts)
    tokens = {g: int(sum(len(ids) + 1 for ids in tok(t)["input_ids"])) for g, t in texts.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        store.put_dir(tmp, f"validations/tokenizers/{digest}/tokenizer")
    store.write_json(counts_key, {"tokens": tokens, "documents": {g: len(t) for g, t in texts.items()}})
    return {
        "tokenizer": store.uri(f"validations/tokenizers/{digest}/tokenizer"),
        "tokenizer_digest": digest,
        "tokens": tokens,
        "documents": {g: len(t) for g, t in texts.items()},
        "computed": True,
    }


def unit_digest(
    weights_digest: str,
    seed: int,
    target: ProxyConfig,
    corpus_digest: str,
    benchmark_digests: list[str],
    evaluation: EvalConfig,
    tokenizer_digest: str = "",
) -> str:
    """The key of one target run: candidate weights, seed, target config, the shared tokenizer (by
    its digest, not its location), corpus, benchmarks, the fields of the evaluation that change
    numbers, and the code version. The store is not part of it: two stores hold the same run."""
    return _digest(
        {
            "weights": weights_digest,
            "seed": seed,
            "tokenizer": tokenizer_digest,
            "target": target.model_dump(
                mode="json",
                # the candidate's digest names its weights and membership (by content)
                exclude={
                    "num_threads",
                    "device",
                    "seed",
                    "group_weights",
                    "tokenizer",
                    "group_membership",
                    "membership_column",
                },
            ),
            "corpus": corpus_digest,
            "benchmarks": sorted(benchmark_digests),
            "evaluation": eval_config_hash(evaluation),
            "code": CODE_VERSION,
        }
    )


@task(name="validation-train", cache_policy=NO_CACHE, task_run_name="train {candidate} seed {seed}")
def train_candidate_task(
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
    """Train one target on ``weights`` with ``seed``, evaluate every checkpoint on every benchmark,
    and write ``validations/runs/<digest>/``: per-question metrics per (step, benchmark) as
    parquet, then ``run.json`` last (its presence means the run is complete; a re-run returns it).

    Returns ``{"key", "computed"}``.
    """
    store = Store(store_uri)
    key = run_key(digest, "run.json")
    if store.exists(key):
        return {"key": key, "computed": False}
    log = get_run_logger()
    t0 = time.perf_counter()
    cfg = target.model_copy(update={"group_weights": dict(weights), "seed": seed})
    benches = [cached_benchmark(s) for s in benchmarks]
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        result = train_proxy(cfg, corpus_uri, str(Path(tmp) / "run"), progress=False)
        for ckpt in result.checkpoints:
            model, tokenizer = load_checkpoint(
                ckpt.uri, device=evaluation.device if evaluation.device != "auto" else "cpu"
            )
            metrics: dict[str, dict[str, float]] = {}
            for bench in benches:
                res = evaluate_benchmark(model, tokenizer, bench.eval_instances, config=evaluation)
                table = question_metrics(res.per_example)
                buf = io.BytesIO()
                table.to_parquet(buf)
                store.write_bytes(run_key(digest, f"step-{ckpt.step}/{bench.name}.parquet"), buf.getvalue())
                metrics[bench.name] = {m: float(table[m].mean()) for m in METRICS}
            steps.append(
                {"step": ckpt.step, "tokens_seen": ckpt.tokens_seen, "loss": ckpt.loss, "metrics": metrics}
            )
            del model
    doc = {
        "candidate": candidate,
        "weights": weights,
        "seed": seed,
        "steps": steps,
        "num_params": result.num_params,
        "group_tokens": result.group_tokens,
        "train_seconds": result.train_seconds,
        "seconds": time.perf_counter() - t0,
        "code_version": CODE_VERSION,
    }
    store.write_json(key, doc)
    final: dict[str, dict[str, float]] = steps[-1]["metrics"]  # type: ignore[assignment]
    log.info(
        "target %s seed %d: final acc_norm %s (%.0fs)",
        candidate,
        seed,
        {b: round(m["acc_norm"], 3) for b, m in final.items()},
        doc["seconds"],
    )
    return {"key": key, "computed": True}


def read_final_questions(store: Store, run: dict[str, Any], digest: str) -> dict[str, pd.DataFrame]:
    """benchmark → the final checkpoint's question table of one run."""
    last: dict[str, Any] = run["steps"][-1]
    return {
        str(b): pd.read_parquet(
            io.BytesIO(store.read_bytes(run_key(digest, f"step-{last['step']}/{b}.parquet")))
        )
        for b in last["metrics"]
    }
