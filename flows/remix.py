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
from automixer_core.config import NOT_IN_IDENTITY, RunConfig, section_hash
from automixer_core.errors import ConfigError
from automixer_core.store import Store
from flows.naming import run_name
from flows.scoring import ScoringUnit, run_units
from tasks.checkpoints import discover_task
from tasks.corpus import shards_task
from tasks.evaluate import evaluate_task
from tasks.influence import query_task
from tasks.publish import latest_mixture, publish_task
from tasks.reports import evaluation_report_task


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@flow(
    name="remix",
    flow_run_name=run_name("remix"),
    task_runner=ThreadPoolTaskRunner(max_workers=1),  # type: ignore[arg-type]
)
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
    Store(config.store).check_writable()  # a missing bucket fails now, not after the evaluations
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
    counts = {"evaluations": sum(r["computed"] for r in eval_results), "queries": 0, "shards_scored": 0}
    batches = _batches(shards, config.corpus.shards_per_task)
    queries: dict[str, dict[str, Any]] = {}
    for name, benches in sorted(chosen.items(), key=lambda kv: by_name[kv[0]]["step"]):
        query = query_task(
            config.store,
            by_name[name],
            [spec_by_name[b] for b in sorted(benches)],
            config.influence,
            config.corpus,
            shards,
            config.evaluation.device,
        )
        counts["queries"] += query["computed"]
        if query["computed"]:
            ran.append(f"query vectors ({query['computed']} of {sorted(benches)}) @ {name}")
        queries[name] = query

    # The fan-out: one unit per (artifact checkpoint, shard batch), wherever execution.mode says.
    units = [ScoringUnit(by_name[name], query, batch) for name, query in queries.items() for batch in batches]
    progress_id = cast(
        UUID, create_progress_artifact(0.0, key="remix-scoring", description="shard batches scored or found")
    )
    done = [0]

    def on_done() -> None:
        done[0] += 1
        update_progress_artifact(progress_id, 100.0 * done[0] / max(1, len(units)))

    results = run_units(config, units, on_done)
    if not units:
        update_progress_artifact(progress_id, 100.0)
    score_keys: dict[str, dict[str, list[str]]] = {}
    for name in queries:
        fp = by_name[name]["fingerprint"]
        mine = [r for u, r in zip(units, results, strict=True) if u.checkpoint["fingerprint"] == fp]
        scored = sum(r["computed"] for r in mine)
        counts["shards_scored"] += scored
        if scored:
            ran.append(f"score {scored} of {len(shards)} shards @ {name}")
        score_keys[fp] = {b: [k for r in mine for k in r["keys"][b]] for b in queries[name]["keys"]}

    published = publish_task(
        config.store,
        checkpoints,
        report["selection"],
        score_keys,
        config.influence,
        config.aggregation,
        config.publish.exports,
        section_hash(config, exclude=set(NOT_IN_IDENTITY)),
        report["keys"]["capability.png"],
        inputs,
        min((f for q in queries.values() if (f := q.get("parameter_fraction")) is not None), default=None),
    )
    return {**published, "nothing_new": False, "counts": counts, "ran": ran, "report": report["uris"]}


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
