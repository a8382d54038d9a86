"""Label tasks: a group predictor trained on a mixture's scored documents, then every corpus shard
labelled by it (issue 13). Keys, all under ``labels/`` in the store:

- ``labels/predictors/<digest>/predictor.pkl`` and ``report.json`` (written last): the predictor
  of one mixture and predictor config, and its held-out agreement with the scored groups;
- ``labels/<label id>/shards/<shard digest>.parquet`` (written last for its shard): one row per
  document: ``doc_id, file, row, domain, group, confidence, source`` (``scored``: the group the
  remix gave it; ``predicted``: the predictor's), ``n_chars`` and predicted ``score__<b>``;
- ``labels/<label id>/by_group/<group>/<shard digest>.jsonl``: the documents themselves
  (``id, text, domain``), one folder per group, for trainers that read a folder per group;
- ``labels/<label id>/labels.json``: the summary and the file list per group (written last).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

import automixer_core
from automixer_core.config import CorpusConfig
from automixer_core.errors import ConfigError, CorpusError
from automixer_core.labels.predictor import GroupPredictor, PredictorConfig, train_group_predictor
from automixer_core.labels.summary import accuracy_sentence, label_summary
from automixer_core.mixture import SCORE_COLUMN_PREFIX, membership_from_parquet
from automixer_core.published import mixture_folder
from automixer_core.store import Store
from tasks.corpus import shard_documents
from tasks.naming import scoring_name

CODE_VERSION = automixer_core.__version__


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def predictor_store_key(digest: str, name: str) -> str:
    return f"labels/predictors/{digest}/{name}"


def label_key(label_id: str, name: str) -> str:
    return f"labels/{label_id}/{name}"


def read_membership(mixture_uri: str) -> pd.DataFrame:
    """The published membership of a mixture (``doc_id, group, joint_score, n_tokens``, ``domain``
    and ``score__<b>`` per benchmark), indexed by nothing."""
    folder = Store(mixture_folder(mixture_uri))
    return membership_from_parquet(folder.read_bytes("membership.parquet"))


@task(name="label-predictor", cache_policy=NO_CACHE)
def train_predictor_task(
    store_uri: str,
    mixture_id: str,
    mixture_uri: str,
    corpus: CorpusConfig,
    scored_shards: list[dict[str, Any]],
    config: PredictorConfig,
    checkpoint: dict[str, Any] | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Train the group predictor on the mixture's scored documents (their text read from the shards
    the remix scored) and write it with its held-out report. Written once per (mixture, config,
    checkpoint). ``checkpoint``: the proxy whose hidden states are features (``features:
    hidden_state`` or ``both``), kept in the predictor so every labelling unit loads it too.

    Returns ``{"key", "digest", "report", "computed"}``.

    Raises:
        CorpusError: a scored document is no longer in the corpus (the corpus changed since the remix).
    """
    store = Store(store_uri)
    if config.features != "ngrams" and checkpoint is None:
        raise ConfigError(
            f"labeling.predictor.features: {config.features} needs the proxy's checkpoint",
            fix="give the run config a checkpoints section, or use features: ngrams",
        )
    digest = _digest(
        {
            "mixture": mixture_id,
            "predictor": config.model_dump(mode="json"),
            "checkpoint": checkpoint["fingerprint"] if checkpoint and config.features != "ngrams" else None,
            "code": CODE_VERSION,
        }
    )
    done = predictor_store_key(digest, "report.json")
    if store.exists(done):
        return {
            "key": predictor_store_key(digest, "predictor.pkl"),
            "digest": digest,
            "report": store.read_json(done),
            "computed": False,
        }
    membership = read_membership(mixture_uri)
    wanted = set(membership["doc_id"])
    texts: dict[str, str] = {}
    for shard in scored_shards:
        for doc in shard_documents(corpus, shard):
            if doc.id in wanted:
                texts[doc.id] = doc.text
    missing = sorted(wanted - set(texts))
    if missing:
        raise CorpusError(
            f"{len(missing)} of the {len(wanted)} documents mixture {mixture_id} scored are not in corpus "
            f"{corpus.uri!r} (e.g. {missing[:3]})",
            expected="the corpus the remix scored",
            fix="run the remix again on the corpus as it is now, then label",
        )
    ids = membership["doc_id"].tolist()
    score_cols = [c for c in membership.columns if str(c).startswith(SCORE_COLUMN_PREFIX)]
    scores = (
        membership[score_cols].rename(columns=lambda c: str(c)[len(SCORE_COLUMN_PREFIX) :])
        if score_cols
        else None
    )
    use = checkpoint if config.features != "ngrams" else None
    with _embedder(use, config, device) as embed:
        predictor, report = train_group_predictor(
            [texts[i] for i in ids],
            membership["group"].astype(str).tolist(),
            scores,
            config,
            embed=embed,
            checkpoint=use,
        )
    store.write_bytes(predictor_store_key(digest, "predictor.pkl"), predictor.to_bytes())
    doc = {**report.to_dict(), "mixture_id": mixture_id, "code_version": CODE_VERSION}
    store.write_json(done, doc)
    get_run_logger().info("Group predictor %s: %s", digest, accuracy_sentence(report.to_dict()))
    return {
        "key": predictor_store_key(digest, "predictor.pkl"),
        "digest": digest,
        "report": doc,
        "computed": True,
    }


@contextlib.contextmanager
def _embedder(
    checkpoint: dict[str, Any] | None, config: PredictorConfig, device: str = "auto"
) -> Iterator[Any]:
    """``texts → mean hidden states`` of ``checkpoint``'s model (held for the block), or None."""
    if checkpoint is None:
        yield None
        return
    from automixer_core.labels.embedding import mean_hidden_states
    from tasks.models import exclusive_model, resolve_device

    with exclusive_model(checkpoint, resolve_device(device)) as (model, tokenizer):
        yield lambda texts: mean_hidden_states(model, tokenizer, texts, max_tokens=config.hidden_max_tokens)


@functools.lru_cache(maxsize=4)
def _load_predictor(store_uri: str, key: str) -> GroupPredictor:
    return GroupPredictor.from_bytes(Store(store_uri).read_bytes(key))


@functools.lru_cache(maxsize=4)
def _scored_groups(mixture_uri: str) -> dict[str, str]:
    membership = read_membership(mixture_uri)
    return dict(zip(membership["doc_id"].astype(str), membership["group"].astype(str), strict=True))


def shard_label_key(label_id: str, shard: dict[str, Any]) -> str:
    return label_key(label_id, f"shards/{shard['digest']}.parquet")


@task(
    name="label-shards",
    cache_policy=NO_CACHE,
    task_run_name=scoring_name("label"),
)
def label_task(
    store_uri: str,
    label_id: str,
    predictor_key: str,
    mixture_uri: str,
    corpus: CorpusConfig,
    shards: list[dict[str, Any]],
    write_documents: bool,
) -> dict[str, Any]:
    """Label every document of ``shards`` not labelled yet: its scored group where the remix scored
    it, else the predictor's. Each shard's parquet is written after its documents' jsonl files, so a
    shard whose parquet exists is complete. Returns ``{"keys", "computed", "documents", "seconds"}``."""
    store = Store(store_uri)
    predictor = _load_predictor(store_uri, predictor_key)
    scored = _scored_groups(mixture_uri)
    keys, computed, documents = [], 0, 0
    t0 = time.perf_counter()
    embed = None
    with contextlib.ExitStack() as held:
        for shard in shards:
            key = shard_label_key(label_id, shard)
            keys.append(key)
            if store.exists(key):
                continue
            docs = list(shard_documents(corpus, shard))
            if embed is None and predictor.needs_embedding:  # the model once, for the unit's shards
                embed = held.enter_context(_embedder(predictor.checkpoint, predictor.config))
            pred = predictor.predict([d.text for d in docs], embed=embed)
            table = pd.DataFrame(
                {
                    "doc_id": [d.id for d in docs],
                    "file": [d.file for d in docs],
                    "row": np.asarray([d.row for d in docs], dtype=np.int64),
                    "domain": [d.group for d in docs],
                    "predicted_group": pred.groups.astype(str),
                    "confidence": pred.confidence.astype(np.float64),
                    "n_chars": np.asarray([len(d.text) for d in docs], dtype=np.int64),
                }
            )
            table["source"] = np.where(table["doc_id"].isin(scored), "scored", "predicted")
            table["group"] = [
                scored.get(i, g) for i, g in zip(table["doc_id"], table["predicted_group"], strict=True)
            ]
            if pred.scores is not None:
                for col in pred.scores.columns:
                    table[f"{SCORE_COLUMN_PREFIX}{col}"] = pred.scores[col].to_numpy(dtype=np.float64)
            if write_documents:
                for group, rows in table.groupby("group", sort=True):
                    lines = [
                        json.dumps(
                            {"id": docs[i].id, "text": docs[i].text, "domain": docs[i].group},
                            ensure_ascii=False,
                        )
                        for i in rows.index
                    ]
                    store.write_text(
                        label_key(label_id, f"by_group/{group}/{shard['digest']}.jsonl"),
                        "\n".join(lines) + "\n",
                    )
            buf = io.BytesIO()
            table.to_parquet(buf, index=False)
            store.write_bytes(key, buf.getvalue())  # last: the shard is labelled once this exists
            computed += 1
            documents += len(docs)
    return {"keys": keys, "computed": computed, "documents": documents, "seconds": time.perf_counter() - t0}


@task(name="label-publish", cache_policy=NO_CACHE)
def publish_labels_task(
    store_uri: str,
    label_id: str,
    mixture_uri: str,
    predictor: dict[str, Any],
    shard_keys: list[str],
    exports: list[str],
) -> dict[str, Any]:
    """Summarise the labelled shards, write the exports that point at the folders per group, then
    ``labels/<id>/labels.json`` and ``labels/latest.json``. Returns the summary document."""
    from datetime import UTC, datetime

    from automixer_core.exports import folder_export_options, write_export
    from automixer_core.published import read_published_mixture

    store = Store(store_uri)
    mixture = read_published_mixture(mixture_uri, verify=False)
    columns = ["doc_id", "group", "source", "n_chars", "domain"]
    labels = pd.concat(
        [pd.read_parquet(io.BytesIO(store.read_bytes(k)), columns=columns) for k in shard_keys],
        ignore_index=True,
    )
    membership = read_membership(mixture_uri)
    summary = label_summary(labels, membership.set_index("doc_id")["n_tokens"], mixture)
    root = label_key(label_id, "by_group")
    files: dict[str, list[str]] = {}
    for key in store.list(root):
        if key.endswith(".jsonl"):
            group = key[len(root) + 1 :].split("/")[0]
            files.setdefault(group, []).append(store.uri(key))
    names = []
    for fmt in exports:
        filename, content = write_export(
            mixture, fmt, **folder_export_options(mixture, fmt, store.uri(root), files)
        )
        store.write_bytes(label_key(label_id, f"exports/{filename}"), content)
        names.append(store.uri(label_key(label_id, f"exports/{filename}")))
    doc = {
        "id": label_id,
        "mixture_id": mixture.id,
        "mixture_uri": mixture_uri,
        "predictor": {
            "digest": predictor["digest"],
            "uri": store.uri(predictor["key"]),
            "report": predictor["report"],
        },
        "summary": summary,
        "files": {g: sorted(f) for g, f in sorted(files.items())},
        "exports": names,
        "shards": len(shard_keys),
        "created_at": datetime.now(UTC).isoformat(),
        "code_version": CODE_VERSION,
    }
    key = label_key(label_id, "labels.json")
    store.write_json(key, doc)  # last: the labelling is complete once this exists
    store.write_json("labels/latest.json", {"id": label_id, "uri": store.uri(key), "mixture_id": mixture.id})
    return {**doc, "uri": store.uri(key)}
