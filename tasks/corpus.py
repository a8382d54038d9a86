"""Corpus shards as a task."""

from __future__ import annotations

import hashlib
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from automixer_core.config import CorpusConfig
from automixer_core.corpus import Shard, make_shards, read_shard

SHARD_FIELDS = ("file", "start", "stop", "digest")


def shard_from_dict(d: dict[str, Any]) -> Shard:
    return Shard(file=d["file"], start=d["start"], stop=d["stop"], digest=d["digest"])


def shard_documents(corpus: CorpusConfig, shard: dict[str, Any]) -> Any:
    """The documents of one shard (a stream of ``Document``)."""
    return read_shard(
        corpus.uri,
        shard_from_dict(shard),
        text_field=corpus.text_field,
        id_field=corpus.id_field,
        group_field=corpus.group_field,
    )


def corpus_shards(corpus: CorpusConfig) -> list[dict[str, Any]]:
    """The corpus cut into shards of at most ``shard_docs`` documents: ``[{file, start, stop, digest}]``.

    With ``max_docs_per_file`` only the first rows of each file are kept (shards cut at that row).
    """
    shards = make_shards(corpus.uri, corpus.shard_docs, allow_empty=corpus.allow_empty)
    out: list[dict[str, Any]] = []
    for s in shards:
        stop = s.stop if corpus.max_docs_per_file is None else min(s.stop, corpus.max_docs_per_file)
        if stop <= s.start:
            continue
        digest = (
            s.digest if stop == s.stop else hashlib.sha256(f"{s.digest}\0{stop}".encode()).hexdigest()[:16]
        )
        out.append({"file": s.file, "start": s.start, "stop": stop, "digest": digest})
    return out


@task(name="corpus-shards", cache_policy=NO_CACHE)
def shards_task(corpus: CorpusConfig) -> list[dict[str, Any]]:
    """:func:`corpus_shards` as a task (logged)."""
    out = corpus_shards(corpus)
    get_run_logger().info(
        "Corpus %s: %d shards, %d documents", corpus.uri, len(out), sum(d["stop"] - d["start"] for d in out)
    )
    return out
