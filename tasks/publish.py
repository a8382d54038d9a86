"""Aggregate the shard scores into groups and weights, and publish a versioned mixture (DESIGN §1.4-7).

Everything of a mixture goes under ``mixtures/<id>/``, its ``manifest.json`` last (see
:mod:`automixer_core.published`); ``mixtures/latest.json`` after it, so a publish that fails half-way
leaves no folder that looks complete and the previous pointer intact.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

import automixer_core
from automixer_core.aggregation import Aggregation, AggregationConfig, aggregate, artifact_steps
from automixer_core.exports import write_export
from automixer_core.influence import InfluenceConfig
from automixer_core.influence.params import coverage_note
from automixer_core.mixture import Mixture, membership_to_parquet, mixture_from_aggregation
from automixer_core.published import MIXTURE, is_complete, read_published_mixture, write_manifest
from automixer_core.report import render_report
from automixer_core.store import Store
from tasks.influence import SCORE_PREFIX
from tasks.keys import LATEST_KEY, mixture_key


def _read_scores(store: Store, keys: list[str]) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(io.BytesIO(store.read_bytes(k))) for k in keys], ignore_index=True)


def benchmark_scores(
    store: Store, selection: pd.DataFrame, score_keys: dict[str, dict[str, list[str]]]
) -> pd.DataFrame:
    """One row per document: ``doc_id, domain, n_tokens`` and ``score__<b>`` for every benchmark b,
    taken at b's artifact checkpoint (averaged over them with ``top_k``/``all``).

    Args:
        selection: the artifact table (``benchmark, fingerprint``).
        score_keys: checkpoint fingerprint → benchmark → its shard score keys.
    """
    base: pd.DataFrame | None = None
    columns: dict[str, pd.Series] = {}
    for bench, rows in selection.groupby("benchmark", sort=True):
        col = f"{SCORE_PREFIX}{bench}"
        parts = []
        for fp in rows["fingerprint"]:
            frame = _read_scores(store, score_keys[fp][str(bench)]).set_index("doc_id")
            if base is None:
                base = frame[["domain", "n_tokens"]]
            parts.append(frame[col])
        columns[col] = pd.concat(parts, axis=1).mean(axis=1)
    assert base is not None
    out = base.copy()
    for name, series in columns.items():
        out[name] = series.reindex(out.index)
    return out.reset_index()


def latest_mixture(store_uri: str) -> Mixture | None:
    """The mixture ``mixtures/latest.json`` points at, or None."""
    store = Store(store_uri)
    if not store.exists(LATEST_KEY):
        return None
    latest = store.read_json(LATEST_KEY)
    folder = mixture_key(latest["id"], "").rstrip("/")
    if not is_complete(store, folder):
        return None
    return read_published_mixture(store.uri(folder), verify=False)


def vanished_notes(previous: Mixture, agg: Aggregation) -> list[str]:
    """Notes naming the domains and groups the previous mixture had and this one lacks (a corpus
    that shrank, or a benchmark that no longer wins any document): never silent."""
    notes = []
    gone_domains = sorted(
        {d.name for d in previous.domains or []} - set(agg.domains["name"] if agg.domains is not None else [])
    )
    if gone_domains:
        notes.append(
            f"shrunk: domain(s) {gone_domains} of the previous mixture {previous.id} are absent from this corpus"
        )
    gone_groups = sorted({g.name for g in previous.groups} - set(agg.groups["name"]))
    if gone_groups:
        notes.append(
            f"shrunk: group(s) {gone_groups} of the previous mixture {previous.id} have no documents now"
        )
    return notes


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
) -> dict[str, Any]:
    """Aggregate, then write ``mixtures/<id>/`` (mixture.json, membership.parquet, exports/, report.html)
    and point ``mixtures/latest.json`` at it. Returns ``{id, uri, weights, written}``."""
    store = Store(store_uri)
    by_name = {c["name"]: c for c in checkpoints}
    selection = pd.DataFrame(selection_records)
    selection["fingerprint"] = [by_name[c]["fingerprint"] for c in selection["checkpoint"]]
    scores = benchmark_scores(store, selection, score_keys)
    agg = aggregate(scores, artifact_steps(selection), aggregation)
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
    notes: list[str] = []
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
    written = False
    if not is_complete(store, folder):  # absent, or an interrupted publish: (re)write every file
        membership = agg.membership.merge(
            scores.drop(columns=["domain", "n_tokens"]), on="doc_id", how="left"
        )
        store.write_bytes(
            mixture_key(mixture.id, "membership.parquet"),
            membership_to_parquet(membership, mixture_id=mixture.id),
        )
        names = ["membership.parquet", "report.html", MIXTURE]
        for fmt in exports:
            filename, content = write_export(mixture, fmt)
            store.write_bytes(mixture_key(mixture.id, f"exports/{filename}"), content)
            names.append(f"exports/{filename}")
        png = store.read_bytes(capability_key) if capability_key else None
        store.write_text(mixture_key(mixture.id, "report.html"), render_report(mixture, agg, png))
        store.write_text(done_key, mixture.to_json())
        write_manifest(store, folder, names)  # last: the mixture is complete once this exists
        written = True
    if latest is None or latest.get("id") != mixture.id:
        store.write_json(
            LATEST_KEY,
            {"id": mixture.id, "uri": store.uri(done_key), "published_at": datetime.now(UTC).isoformat()},
        )
    weights = mixture.weights
    create_table_artifact(
        key="mixture-weights",
        table=[
            {
                "group": g.name,
                "weight": round(g.weight, 4),
                "ci": g.weight_ci,
                "tokens": g.tokens,
                "documents": g.documents,
                "driven_by": ", ".join(d.benchmark for d in g.driven_by[:3]),
            }
            for g in mixture.groups
        ],
        description=f"mixture {mixture.id}",
    )
    create_markdown_artifact(
        key="mixture-summary",
        markdown=f"## Mixture `{mixture.id}`\n\n"
        + "\n".join(f"- **{k}**: {v:.3f}" for k, v in weights.items()),
    )
    create_link_artifact(
        key="mixture-report", link=store.uri(mixture_key(mixture.id, "report.html")), link_text="report.html"
    )
    return {"id": mixture.id, "uri": store.uri(done_key), "weights": weights, "written": written}
