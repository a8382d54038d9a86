"""Flow ``remix``: discover → evaluate → select → query vectors → score shards → aggregate → publish."""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

import automixer_core
from automixer_core.benchmarks import benchmark_data_digest
from automixer_core.config import RunConfig, section_hash
from automixer_core.errors import ConfigError
from automixer_core.store import Store
from tasks.checkpoints import discover_task
from tasks.corpus import shards_task
from tasks.evaluate import evaluate_task
from tasks.influence import query_task, score_task
from tasks.publish import latest_mixture, publish_task
from tasks.reports import evaluation_report_task


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@flow(name="remix", task_runner=ThreadPoolTaskRunner(max_workers=1))  # type: ignore[arg-type]
def remix_flow(config: RunConfig) -> dict[str, Any]:
    """The whole method on one run config; every step reads what the store already holds.

    Returns the mixture's id, URI and weights, ``counts``: how many evaluations, query-vector
    builds and shard scorings actually ran (0 everywhere on a re-run with nothing changed), and
    ``ran``: those units of work in words.
    """
    if config.corpus is None:
        raise ConfigError(
            "The run config has no corpus section", fix="add corpus: {uri: <folder or s3:// prefix>}"
        )
    checkpoints = discover_task(config.checkpoints.uri, config.checkpoints.revision)
    specs = config.benchmarks.specs()
    shards = shards_task(config.corpus)
    inputs = inputs_digest(config, checkpoints, [benchmark_data_digest(s) for s in specs], shards)
    latest = latest_mixture(config.store)
    if latest is not None and getattr(latest.provenance, "inputs_digest", None) == inputs:
        get_run_logger().info(
            "Nothing new since mixture %s: same checkpoints, benchmarks, corpus and config", latest.id
        )
        store = Store(config.store)
        return Completed(  # type: ignore[return-value]  # Prefect ends the run in this state, returns its data
            message="nothing new",
            data={
                "id": latest.id,
                "uri": store.uri(f"mixtures/{latest.id}/mixture.json"),
                "weights": latest.weights,
                "written": False,
                "nothing_new": True,
                "counts": {"evaluations": 0, "queries": 0, "shards_scored": 0},
                "ran": [],
                "report": {},
            },
        )
    pairs = [(c, s) for c in checkpoints for s in specs]
    evals = [evaluate_task.submit(config.store, c, s, config.evaluation) for c, s in pairs]
    eval_results = [f.result() for f in evals]
    ran = [
        f"evaluate {s.name} @ {c['name']}"
        for (c, s), r in zip(pairs, eval_results, strict=True)
        if r["computed"]
    ]
    report = evaluation_report_task(config.store, [r["key"] for r in eval_results], config.selection)

    by_name = {c["name"]: c for c in checkpoints}
    spec_by_name = {s.name: s for s in specs}
    chosen: dict[str, list[str]] = {}
    for row in report["selection"]:
        chosen.setdefault(row["checkpoint"], []).append(row["benchmark"])
    score_keys: dict[str, dict[str, list[str]]] = {}
    counts = {"evaluations": sum(r["computed"] for r in eval_results), "queries": 0, "shards_scored": 0}
    # Progress in the UI: one unit per (artifact checkpoint, shard batch), scored or found in the store.
    total_units = max(1, len(chosen) * len(_batches(shards, config.corpus.shards_per_task)))
    done_units = 0
    progress_id = cast(
        UUID, create_progress_artifact(0.0, key="remix-scoring", description="shard batches scored or found")
    )
    for name, benches in sorted(chosen.items(), key=lambda kv: by_name[kv[0]]["step"]):
        ckpt = by_name[name]
        query = query_task(
            config.store,
            ckpt,
            [spec_by_name[b] for b in sorted(benches)],
            config.influence,
            config.corpus,
            shards,
            config.evaluation.device,
        )
        counts["queries"] += query["computed"]
        if query["computed"]:
            ran.append(f"query vectors ({query['computed']} of {sorted(benches)}) @ {name}")
        futures = [
            score_task.submit(
                config.store, ckpt, query, batch, config.influence, config.corpus, config.evaluation.device
            )
            for batch in _batches(shards, config.corpus.shards_per_task)
        ]
        results = []
        for f in futures:
            results.append(f.result())
            done_units += 1
            update_progress_artifact(progress_id, 100.0 * done_units / total_units)
        counts["shards_scored"] += sum(r["computed"] for r in results)
        if any(r["computed"] for r in results):
            ran.append(f"score {sum(r['computed'] for r in results)} of {len(shards)} shards @ {name}")
        score_keys[ckpt["fingerprint"]] = {
            b: [k for r in results for k in r["keys"][b]] for b in query["keys"]
        }

    published = publish_task(
        config.store,
        checkpoints,
        report["selection"],
        score_keys,
        config.influence,
        config.aggregation,
        config.publish.exports,
        section_hash(config, exclude={"store"}),
        report["keys"]["capability.png"],
        inputs,
    )
    return {**published, "nothing_new": False, "counts": counts, "ran": ran, "report": report["uris"]}


def inputs_digest(
    config: RunConfig,
    checkpoints: list[dict[str, Any]],
    benchmark_digests: list[str],
    shards: list[dict[str, Any]],
) -> str:
    """Digest of everything a mixture depends on: checkpoint fingerprints, benchmark data, corpus
    shards, the config (less the store) and the code version. Equal digests mean nothing new."""
    payload = {
        "checkpoints": sorted(c["fingerprint"] for c in checkpoints),
        "benchmarks": sorted(benchmark_digests),
        "shards": [s["digest"] for s in shards],
        "config": section_hash(config, exclude={"store"}),
        "code": automixer_core.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
