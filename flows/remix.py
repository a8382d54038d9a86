"""Flow ``remix``: discover → evaluate → select → query vectors → score shards → aggregate → publish."""

from __future__ import annotations

import random
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from automixer_core.benchmarks import benchmark_data_digest
from automixer_core.config import NOT_IN_IDENTITY, CorpusConfig, RunConfig, section_hash
from automixer_core.errors import ConfigError
from automixer_core.store import Store
from flows.evaluate import evaluate_all
from flows.naming import run_name
from flows.progress import RunProgress
from flows.queries import QueryUnit, build_queries
from flows.scoring import ScoringUnit, run_units
from tasks.checkpoints import discover_task
from tasks.corpus import shards_task
from tasks.keys import inputs_digest
from tasks.mixture_inputs import latest_mixture
from tasks.publish import interval_width_task, publish_task
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
    progress = RunProgress("remix-progress", list(PHASES), "the remix: " + " → ".join(PHASES))
    progress.phase("inputs", 2, "lists", "checkpoints and corpus shards")
    checkpoints = discover_task(config.checkpoints.uri, config.checkpoints.revision)
    progress.advance("inputs")
    specs = config.benchmarks.specs()
    shards = shards_task(config.corpus)
    progress.end(
        "inputs",
        f"{len(checkpoints)} checkpoints, {len(specs)} benchmarks, {len(shards)} shards of "
        f"{sum(s['stop'] - s['start'] for s in shards):,} documents",
    )
    inputs = inputs_digest(config, checkpoints, [benchmark_data_digest(s) for s in specs], shards)
    latest = latest_mixture(config.store)
    if latest is not None and getattr(latest.provenance, "inputs_digest", None) == inputs:
        progress.finish()
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
    eval_results = evaluate_all(config, checkpoints, specs, progress)
    pairs = [(c, s) for c in checkpoints for s in specs]
    ran = [
        f"evaluate {s.name} @ {c['name']}"
        for (c, s), r in zip(pairs, eval_results, strict=True)
        if r["computed"]
    ]
    report = evaluation_report_task(config.store, [r["key"] for r in eval_results], config.selection)
    progress.show("evaluation", report)

    by_name = {c["name"]: c for c in checkpoints}
    spec_by_name = {s.name: s for s in specs}
    chosen: dict[str, list[str]] = {}
    for row in report["selection"]:
        chosen.setdefault(row["checkpoint"], []).append(row["benchmark"])
    counts = {"evaluations": sum(r["computed"] for r in eval_results), "queries": 0, "shards_scored": 0}
    queries: dict[str, dict[str, Any]] = {}
    progress.phase(
        "queries",
        len(chosen),
        "artifact checkpoints",
        f"query vectors of {sum(len(b) for b in chosen.values())} benchmarks",
    )
    order = sorted(chosen, key=lambda name: by_name[name]["step"])
    query_units = [QueryUnit(by_name[n], [spec_by_name[b] for b in sorted(chosen[n])]) for n in order]
    for name, query in zip(
        order, build_queries(config, query_units, shards, lambda: progress.advance("queries")), strict=True
    ):
        counts["queries"] += query["computed"]
        if query["computed"]:
            ran.append(f"query vectors ({query['computed']} of {sorted(chosen[name])}) @ {name}")
        queries[name] = query
    progress.end("queries", f"{counts['queries']} built, the rest from the store")

    # The fan-out: one unit per (artifact checkpoint, shard batch), wherever execution.mode says;
    # with corpus.target_width, in rounds of shards in a seeded random order (see sample_rounds).
    rounds = sample_rounds(shards, config.corpus)
    progress.phase(
        "score",
        len(queries) * sum(len(_batches(r, config.corpus.shards_per_task)) for r in rounds),
        "shard batches",
        f"{len(queries)} checkpoints × batches of ≤ {config.corpus.shards_per_task} shards, "
        f"{config.execution.mode} mode" + (f", up to {len(rounds)} rounds" if len(rounds) > 1 else ""),
    )
    units: list[ScoringUnit] = []
    results: list[dict[str, Any]] = []
    sample: list[dict[str, Any]] = []
    width = None
    for round_shards in rounds:
        new_units = [
            ScoringUnit(by_name[name], query, batch)
            for name, query in queries.items()
            for batch in _batches(round_shards, config.corpus.shards_per_task)
        ]
        results += run_units(config, new_units, lambda: progress.advance("score"))
        units += new_units
        sample += round_shards
        if config.corpus.target_width is None:
            continue
        width = interval_width_task(
            config.store,
            checkpoints,
            report["selection"],
            _score_keys(queries, by_name, units, results),
            config.aggregation,
            len(sample),
        )
        get_run_logger().info(
            "Sample of %d of %d shards: widest 90%% weight interval %.4f (target %.4f)",
            len(sample),
            len(shards),
            width,
            config.corpus.target_width,
        )
        if width <= config.corpus.target_width:
            break
    score_keys = _score_keys(queries, by_name, units, results)
    for name in queries:
        fp = by_name[name]["fingerprint"]
        scored = sum(
            r["computed"] for u, r in zip(units, results, strict=True) if u.checkpoint["fingerprint"] == fp
        )
        counts["shards_scored"] += scored
        if scored:
            ran.append(f"score {scored} of {len(sample)} shards @ {name}")
    progress.end("score", f"{counts['shards_scored']} shard scorings computed, the rest from the store")
    notes = sample_notes(config.corpus, shards, sample, width)

    progress.phase("publish", 1, "mixture", "aggregate into groups and weights, write the mixture")
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
        corpus=config.corpus,
        shards=sample,
        sample_notes=notes,
    )
    progress.end(
        "publish", f"mixture {published['id']}" + ("" if published["written"] else " (already there)")
    )
    return {**published, "nothing_new": False, "counts": counts, "ran": ran, "report": report["uris"]}


#: The remix's phases, in order (its progress artifact divides evenly among them).
PHASES = ("inputs", "evaluate", "queries", "score", "publish")


def _score_keys(
    queries: dict[str, dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    units: list[ScoringUnit],
    results: list[dict[str, Any]],
) -> dict[str, dict[str, list[str]]]:
    """Checkpoint fingerprint → benchmark → the score keys of every shard scored so far."""
    out: dict[str, dict[str, list[str]]] = {}
    for name in queries:
        fp = by_name[name]["fingerprint"]
        mine = [r for u, r in zip(units, results, strict=True) if u.checkpoint["fingerprint"] == fp]
        out[fp] = {b: [k for r in mine for k in r["keys"][b]] for b in queries[name]["keys"]}
    return out


def sample_rounds(shards: list[dict[str, Any]], corpus: CorpusConfig) -> list[list[dict[str, Any]]]:
    """The shards to score, in rounds: all of them in one round, or with ``corpus.target_width``
    ``round_shards`` at a time in a seeded random order (so a corpus whose files are sorted, by
    date or by source, is sampled evenly, not by its first rows)."""
    if corpus.target_width is None:
        return [shards]
    order = list(shards)
    random.Random(corpus.sample_seed).shuffle(order)
    return [order[i : i + corpus.round_shards] for i in range(0, len(order), corpus.round_shards)]


def sample_notes(
    corpus: CorpusConfig, shards: list[dict[str, Any]], sample: list[dict[str, Any]], width: float | None
) -> list[str]:
    """The mixture's note on its sample: how many documents were scored and why the sampling stopped."""
    if corpus.target_width is None:
        return []
    docs = sum(s["stop"] - s["start"] for s in sample)
    total = sum(s["stop"] - s["start"] for s in shards)
    head = (
        f"sample: {docs:,} of {total:,} documents scored ({len(sample)} of {len(shards)} shards, in a random "
        f"order with seed {corpus.sample_seed})"
    )
    if width is not None and width <= corpus.target_width:
        return [
            f"{head}, until the widest 90% weight interval was {width:.3f}, within the target "
            f"{corpus.target_width:g}; the other documents get a group from `automixer label`"
        ]
    return [
        f"{head}: every shard was scored and the widest 90% weight interval is still {width or float('nan'):.3f}, "
        f"above the target {corpus.target_width:g}"
    ]
