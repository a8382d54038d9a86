"""Aggregate the shard scores into groups and weights, and publish a versioned mixture (DESIGN §1.4-7).

Everything of a mixture goes under ``mixtures/<id>/``, its ``manifest.json`` last (see
:mod:`automixer_core.published`); ``mixtures/latest.json`` after it, so a publish that fails half-way
leaves no folder that looks complete and the previous pointer intact.
:func:`add_validation_to_report` later adds a validation's result to the report (and rewrites the
manifest).
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
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
    MixtureDomain,
    MixtureGroup,
    membership_to_parquet,
    mixture_from_aggregation,
)
from automixer_core.plots import ARTIFACT_DPI, weights_plot
from automixer_core.published import (
    MANIFEST,
    MIXTURE,
    is_complete,
    read_published_mixture,
    write_manifest,
)
from automixer_core.report import (
    MEMBERSHIP_SENTENCE,
    SampleDocument,
    pick_samples,
    render_report,
    sample_document,
    with_validation,
)
from automixer_core.report.common import interval, note_sentence, pct
from automixer_core.report.weights import driven_by, token_shares
from automixer_core.store import Store
from tasks.corpus import shard_documents
from tasks.influence import SCORE_PREFIX
from tasks.keys import LATEST_KEY, mixture_key
from tasks.reports import markdown_image

#: The column of :func:`benchmark_scores` naming each document's corpus shard (its digest).
SHARD_COLUMN = "shard"


def _read_scores(store: Store, keys: list[str]) -> pd.DataFrame:
    """The score files ``keys`` concatenated, with each row's shard digest (the file's name) in
    :data:`SHARD_COLUMN`."""
    frames = []
    for k in keys:
        frame = pd.read_parquet(io.BytesIO(store.read_bytes(k)))
        frame[SHARD_COLUMN] = posixpath.basename(k).removesuffix(".parquet")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def benchmark_scores(
    store: Store, selection: pd.DataFrame, score_keys: dict[str, dict[str, list[str]]]
) -> pd.DataFrame:
    """One row per document: ``doc_id, domain, n_tokens, shard`` (the digest of its corpus shard)
    and ``score__<b>`` for every benchmark b, taken at b's artifact checkpoint (averaged over them
    with ``top_k``/``all``).

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
                base = frame[["domain", "n_tokens", SHARD_COLUMN]]
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


def read_texts(
    corpus: CorpusConfig, shards: list[dict[str, Any]], wanted: Mapping[str, str]
) -> dict[str, str]:
    """doc_id → text of the documents ``wanted`` (doc_id → shard digest), reading only their
    shards, each once and only as far as its last wanted document."""
    by_digest = {s["digest"]: s for s in shards}
    need: dict[str, set[str]] = {}
    for doc, digest in wanted.items():
        need.setdefault(digest, set()).add(doc)
    out: dict[str, str] = {}
    for digest, docs in need.items():
        shard = by_digest.get(digest)
        if shard is None:
            continue
        for d in shard_documents(corpus, shard):
            if d.id in docs:
                out[d.id] = d.text
                docs.discard(d.id)
                if not docs:
                    break
    return out


def sample_documents(
    membership: pd.DataFrame,
    corpus: CorpusConfig | None,
    shards: list[dict[str, Any]] | None,
    *,
    seed: int = 0,
) -> tuple[dict[str, list[SampleDocument]], str | None]:
    """A few documents per group (:func:`automixer_core.report.pick_samples`) with their texts,
    and a sentence saying why none could be read (None when they were).

    Args:
        membership: one row per document, with a ``shard`` column (its shard digest).
        corpus: the corpus the documents come from; None: no texts.
        shards: the shards the scores were computed on (``file, start, stop, digest``).
    """
    if corpus is None or shards is None or SHARD_COLUMN not in membership.columns:
        return {}, "Sample documents are not shown: the publish step was not given the corpus and its shards."
    picked = pick_samples(membership, seed=seed)
    try:
        texts = read_texts(corpus, shards, dict(zip(picked["doc_id"], picked[SHARD_COLUMN], strict=True)))
    except (AutoMixerError, OSError) as exc:
        return {}, f"Sample documents could not be read from the corpus {corpus.uri}: {exc}"
    out: dict[str, list[SampleDocument]] = {}
    for row in picked.to_dict("records"):
        text = texts.get(str(row["doc_id"]))
        if text is not None:
            out.setdefault(str(row["group"]), []).append(sample_document(row, text))
    missing = len(picked) - sum(len(v) for v in out.values())
    problem = f"{missing} sampled document(s) were not found in the corpus." if missing else None
    return out, problem


def read_evals(store: Store, key: str | None) -> pd.DataFrame | None:
    """The evaluation table at ``key`` (evals.parquet), or None when there is none."""
    if key is None or not store.exists(key):
        return None
    return pd.read_parquet(io.BytesIO(store.read_bytes(key)))


# --- Prefect artifacts ---------------------------------------------------------------------------


def weight_rows(entries: list[MixtureGroup] | list[MixtureDomain], what: str) -> list[dict[str, str]]:
    """Rows of a weights table artifact, largest weight first; every cell a short string."""
    share = token_shares(entries)
    rows = []
    for e in sorted(entries, key=lambda x: (-x.weight, x.name)):
        row = {
            what: e.name,
            "weight": pct(e.weight),
            "interval": interval(e.weight_ci),
            "token share": pct(share[e.name]),
            "tokens": f"{e.tokens:,}",
            "documents": f"{e.documents:,}",
        }
        if isinstance(e, MixtureGroup):
            row["driven by"] = driven_by(e) or "–"
        rows.append(row)
    return rows


def browser_link(store: Store, key: str, text: str) -> str:
    """A markdown link that opens in a browser (a presigned https URL), or where the file is when
    none can (a local store: browsers do not open file:// links from a web page)."""
    url = store.public_url(key)
    if url is not None and url.startswith(("https://", "http://")):
        return f"[{text}]({url})"
    where = url if url is not None else store.uri(key)
    return f"{text}: `{where}`"


def summary_markdown(mixture: Mixture, store: Store, files: list[str]) -> str:
    """The mixture's markdown artifact: the facts in sentences, the weights chart (small data-URI
    image) and the files, as links where a browser can open them."""
    folder = mixture_key(mixture.id, "")
    share = token_shares(mixture.groups)
    tokens = sum(g.tokens for g in mixture.groups)
    docs = sum(g.documents for g in mixture.groups)
    top = sorted(mixture.groups, key=lambda g: -g.weight)[:3]
    lines = [
        f"## Mixture `{mixture.id}`",
        "",
        f"{docs:,} scored documents ({tokens:,} tokens) in {len(mixture.groups)} groups. Largest weights: "
        + "; ".join(f"**{g.name}** {pct(g.weight)} (from {pct(share[g.name])} of the tokens)" for g in top)
        + ".",
        "",
    ]
    if mixture.notes:
        lines += ["**Notes**", "", *[f"- {note_sentence(n)}" for n in mixture.notes], ""]
    lines += [
        markdown_image(
            weights_plot(mixture.groups, "Group weights and token shares", dpi=ARTIFACT_DPI),
            "group weights",
            store.uri(mixture_key(mixture.id, "report.html")),
        ),
        "",
        "**Files**",
        "",
        *[f"- {browser_link(store, folder + name, name)}" for name in files],
        "",
        MEMBERSHIP_SENTENCE,
    ]
    url = store.public_url(mixture_key(mixture.id, "report.html")) or ""
    if url.startswith("https://"):
        lines += ["", "Links are presigned: they open for 7 days."]
    elif not url.startswith("http"):
        lines += [
            "",
            "These files are on the machine that ran the flow (a local store): a browser does not open "
            "them from this page; open the paths there.",
        ]
    return "\n".join(lines)


def _artifacts(mixture: Mixture, store: Store, files: list[str]) -> None:
    create_table_artifact(
        key="mixture-weights",
        table=weight_rows(mixture.groups, "group"),
        description=f"mixture {mixture.id}: group weights (% of training tokens) and token shares",
    )
    if mixture.domains:
        create_table_artifact(
            key="mixture-domain-weights",
            table=weight_rows(mixture.domains, "domain"),
            description=f"mixture {mixture.id}: per-domain weights by the same rule",
        )
    create_markdown_artifact(key="mixture-summary", markdown=summary_markdown(mixture, store, files))
    report = mixture_key(mixture.id, "report.html")
    url = store.public_url(report)
    create_link_artifact(
        key="mixture-report",
        link=url if url is not None else store.uri(report),
        link_text="report.html",
        description=f"the report of mixture {mixture.id}; a file:// link opens only on the machine that holds it",
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
