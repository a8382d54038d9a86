"""Aggregate the shard scores into groups and weights, and publish a versioned mixture (DESIGN §1.4-7).

Everything of a mixture goes under ``mixtures/<id>/``, its ``manifest.json`` last (see
:mod:`automixer_core.published`); ``mixtures/latest.json`` after it, so a publish that fails half-way
leaves no folder that looks complete and the previous pointer intact.
:func:`add_validation_to_report` later adds a validation's result to the report (and rewrites the
manifest). The stored inputs it reads are in :mod:`tasks.mixture_inputs`; the Prefect artifacts it
creates in :mod:`tasks.mixture_artifacts`.
"""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

import automixer_core
from automixer_core.aggregation import Aggregation, AggregationConfig, aggregate, artifact_steps
from automixer_core.config import CorpusConfig
from automixer_core.errors import AutoMixerError, ConfigError, StorageError
from automixer_core.exports import write_export
from automixer_core.influence import InfluenceConfig
from automixer_core.influence.params import coverage_note
from automixer_core.mixture import (
    SCORE_COLUMN_PREFIX,
    Mixture,
    membership_to_parquet,
    mixture_from_aggregation,
)
from automixer_core.published import MANIFEST, MIXTURE, is_complete, write_manifest
from automixer_core.report import render_report, with_validation
from automixer_core.store import Store
from tasks.keys import LATEST_KEY, mixture_key
from tasks.mixture_artifacts import _artifacts
from tasks.mixture_inputs import (
    SHARD_COLUMN,
    benchmark_scores,
    latest_mixture,
    read_evals,
    sample_documents,
)


def vanished_notes(previous: Mixture, agg: Aggregation) -> list[str]:
    """Notes naming the domains and groups the previous mixture had and this one lacks (a corpus
    that shrank, or a benchmark that no longer wins any document): never silent."""
    notes = []
    gone_domains = sorted(
        {d.name for d in previous.domains or []} - set(agg.domains["name"] if agg.domains is not None else [])
    )
    if gone_domains:
        notes.append(
            f"shrunk: the domain(s) {', '.join(gone_domains)} of the previous mixture {previous.id} "
            "are absent from this corpus"
        )
    gone_groups = sorted({g.name for g in previous.groups} - set(agg.groups["name"]))
    if gone_groups:
        notes.append(
            f"shrunk: the group(s) {', '.join(gone_groups)} of the previous mixture {previous.id} "
            "have no documents now"
        )
    return notes


def check_membership(membership: pd.DataFrame, benchmarks: list[str]) -> None:
    """Raise unless ``membership`` holds what the report promises (:data:`MEMBERSHIP_SENTENCE`):
    ``doc_id, group, joint_score, n_tokens`` and ``score__<b>`` for every benchmark b.

    Raises:
        AutoMixerError: a column is missing.
    """
    want = ["doc_id", "group", "joint_score", "n_tokens", *(f"{SCORE_COLUMN_PREFIX}{b}" for b in benchmarks)]
    missing = [c for c in want if c not in membership.columns]
    if missing:
        raise AutoMixerError(
            f"The membership table lacks column(s) {', '.join(missing)}",
            expected=f"columns {', '.join(want)}",
            fix="pass the per-benchmark scores table that the aggregation was computed from",
        )


def widest_interval(agg: Aggregation) -> float:
    """The widest 90% bootstrap interval of any group's weight (weight units; inf without bootstrap)."""
    widths = [hi - lo for ci in agg.groups["weight_ci"] if ci is not None for lo, hi in [ci]]
    return max(widths) if widths else float("inf")


@task(name="interval-width", cache_policy=NO_CACHE, task_run_name="interval width of {n_shards} shards")
def interval_width_task(
    store_uri: str,
    checkpoints: list[dict[str, Any]],
    selection_records: list[dict[str, Any]],
    score_keys: dict[str, dict[str, list[str]]],
    aggregation: AggregationConfig,
    n_shards: int,
) -> float:
    """The widest 90% weight interval the mixture of the shards scored so far would have (the
    aggregation a publish would run, without writing anything)."""
    _, _, agg = aggregate_selection(Store(store_uri), checkpoints, selection_records, score_keys, aggregation)
    return widest_interval(agg)


def aggregate_selection(
    store: Store,
    checkpoints: list[dict[str, Any]],
    selection_records: list[dict[str, Any]],
    score_keys: dict[str, dict[str, list[str]]],
    aggregation: AggregationConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, Aggregation]:
    """The artifact table (with fingerprints), the per-document scores (with each row's shard) and
    their aggregation: what a publish writes, and what the sampling rounds check."""
    by_name = {c["name"]: c for c in checkpoints}
    selection = pd.DataFrame(selection_records)
    selection["fingerprint"] = [by_name[c]["fingerprint"] for c in selection["checkpoint"]]
    scores = benchmark_scores(store, selection, score_keys)
    agg = aggregate(scores.drop(columns=[SHARD_COLUMN]), artifact_steps(selection), aggregation)
    return selection, scores, agg


@task(name="publish-mixture", cache_policy=NO_CACHE)
def publish_task(
    store_uri: str,
    checkpoints: list[dict[str, Any]],
    selection_records: list[dict[str, Any]],
    score_keys: dict[str, dict[str, list[str]]],
    influence: InfluenceConfig,
    aggregation: AggregationConfig,
    exports: list[str],
    config_hash: str,
    capability_key: str | None = None,
    inputs_digest: str = "",
    parameter_fraction: float | None = None,
    *,
    evals_key: str | None = None,
    corpus: CorpusConfig | None = None,
    shards: list[dict[str, Any]] | None = None,
    sample_notes: list[str] | None = None,
) -> dict[str, Any]:
    """Aggregate, then write ``mixtures/<id>/`` (mixture.json, membership.parquet, exports/, report.html)
    and point ``mixtures/latest.json`` at it. Returns ``{id, uri, weights, written}``.

    Args:
        capability_key: the key of the evaluation report's capability.png; its folder also holds
            evals.parquet, which the report's capability panel is drawn from.
        evals_key: the evaluation table (evals.parquet); default: beside ``capability_key``.
        corpus: the corpus, to show a few documents of each group in the report (read from their
            shards only); None: no sample documents.
        shards: the shards the scores were computed on (``file, start, stop, digest``).
    """
    store = Store(store_uri)
    selection, scores, agg = aggregate_selection(
        store, checkpoints, selection_records, score_keys, aggregation
    )
    provenance: dict[str, Any] = {
        "checkpoints": [
            {"name": c["name"], "step": c["step"], "fingerprint": c["fingerprint"]} for c in checkpoints
        ],
        "artifacts": [
            {
                "benchmark": r["benchmark"],
                "checkpoint": r["checkpoint"],
                "step": int(r["step"]),
                "score": float(r["score"]),
                "metric": r["metric"],
            }
            for r in selection_records
        ],
        "estimator": influence.estimator + ("+adam" if influence.adam else ""),
        "layers": influence.layers,
        "alpha": {},
        "config_hash": config_hash,
        "inputs_digest": inputs_digest,
        "code_version": automixer_core.__version__,
    }
    notes: list[str] = list(sample_notes or [])  # how the scored sample was drawn, where it was
    if parameter_fraction is not None:
        provenance["parameter_fraction"] = round(parameter_fraction, 6)
        note = coverage_note(influence.layers, parameter_fraction)
        if note is not None:
            notes.append(note)
            get_run_logger().warning(note)
    previous = latest_mixture(store_uri)
    if previous is not None:
        notes += vanished_notes(previous, agg)
        for note in notes:
            if note.startswith("shrunk:"):
                get_run_logger().warning(note)
    mixture: Mixture = mixture_from_aggregation(agg, provenance, notes=notes)
    latest = store.read_json(LATEST_KEY) if store.exists(LATEST_KEY) else None
    done_key = mixture_key(mixture.id, "mixture.json")
    folder = mixture_key(mixture.id, "").rstrip("/")
    names = ["membership.parquet", "report.html", MIXTURE]
    export_files = [write_export(mixture, fmt) for fmt in exports]
    names += [f"exports/{filename}" for filename, _ in export_files]
    written = False
    if not is_complete(store, folder):  # absent, or an interrupted publish: (re)write every file
        membership = agg.membership.merge(
            scores.drop(columns=["domain", "n_tokens", SHARD_COLUMN]), on="doc_id", how="left"
        )
        check_membership(membership, sorted(agg.benchmarks))
        store.write_bytes(
            mixture_key(mixture.id, "membership.parquet"),
            membership_to_parquet(membership, mixture_id=mixture.id),
        )
        for filename, content in export_files:
            store.write_bytes(mixture_key(mixture.id, f"exports/{filename}"), content)
        if evals_key is None and capability_key:
            evals_key = posixpath.join(posixpath.dirname(capability_key), "evals.parquet")
        evals = read_evals(store, evals_key)
        png = store.read_bytes(capability_key) if capability_key and evals is None else None
        samples, problem = sample_documents(
            membership.merge(scores[["doc_id", SHARD_COLUMN]], on="doc_id", how="left"), corpus, shards
        )
        page = render_report(
            mixture,
            agg,
            png,
            membership=membership,
            evals=evals,
            selection=selection,
            samples=samples,
            samples_problem=problem,
            exports=[filename for filename, _ in export_files],
        )
        store.write_text(mixture_key(mixture.id, "report.html"), page)
        store.write_text(done_key, mixture.to_json())
        write_manifest(store, folder, names)  # last: the mixture is complete once this exists
        written = True
    if latest is None or latest.get("id") != mixture.id:
        store.write_json(
            LATEST_KEY,
            {"id": mixture.id, "uri": store.uri(done_key), "published_at": datetime.now(UTC).isoformat()},
        )
    _artifacts(mixture, store, ["report.html", MIXTURE, *names[3:], "membership.parquet"])
    return {"id": mixture.id, "uri": store.uri(done_key), "weights": mixture.weights, "written": written}


def add_validation_to_report(store_uri: str, mixture_id: str, validation: dict[str, Any]) -> str:
    """Put a validation's result into the report of mixture ``mixture_id`` in ``store_uri`` and
    rewrite the folder's manifest (the same files, the report's new digest), so
    ``read_published_mixture`` still verifies. Re-running it with another validation replaces
    the previous one.

    Args:
        store_uri: the store holding ``mixtures/<mixture_id>/``.
        mixture_id: the mixture's id.
        validation: the validation document (``validations/<id>/validation.json``, as
            ``flows/validate.py`` writes it: ``id, config, tokens_per_run, target_summary,
            candidates_info, summary``).

    Returns:
        The report's URI.

    Raises:
        StorageError: the mixture's publish is not complete (no manifest).
        ConfigError: ``validation`` lacks a field the section needs.
    """
    store = Store(store_uri)
    folder = mixture_key(mixture_id, "").rstrip("/")
    if not is_complete(store, folder):
        raise StorageError(
            f"No complete mixture {mixture_id!r} in {store.uri(folder)!r}",
            expected=f"a published mixtures/{mixture_id}/ with its {MANIFEST}",
            fix="pass the store the mixture was published to, or run the remix first",
        )
    summary = validation.get("summary", {})
    missing = [k for k in ("id", "summary") if k not in validation]
    missing += [
        f"summary.{k}"
        for k in ("candidates", "seeds", "headline_metric", "final", "differences", "curves")
        if k not in summary
    ]
    if missing:
        raise ConfigError(
            f"The validation document lacks {', '.join(missing)}",
            expected="the document flows/validate.py writes to validations/<id>/validation.json",
        )
    key = mixture_key(mixture_id, "report.html")
    store.write_text(key, with_validation(store.read_text(key), validation, mixture_id))
    manifest = store.read_json(f"{folder}/{MANIFEST}")
    write_manifest(store, folder, sorted(manifest.get("files", {})))
    return store.uri(key)
