"""The stored inputs a publish reads (DESIGN §1.4-7): the per-document benchmark scores, the mixture
``mixtures/latest.json`` points at, sample documents' texts from their corpus shards, and the
evaluation table.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Mapping
from typing import Any

import pandas as pd

from automixer_core.config import CorpusConfig
from automixer_core.errors import AutoMixerError
from automixer_core.mixture import Mixture
from automixer_core.published import is_complete, read_published_mixture
from automixer_core.report import SampleDocument, pick_samples, sample_document
from automixer_core.store import Store
from tasks.corpus import shard_documents
from tasks.influence import SCORE_PREFIX
from tasks.keys import LATEST_KEY, mixture_key

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
