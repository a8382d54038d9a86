"""Cutting a corpus into :class:`Shard` s: row ranges of one file, with a content digest each.

A shard's digest hashes the file key, the file's content digest and the row range, so it keys
cached results and changes when (and only when) the documents it names can have changed.
"""

from __future__ import annotations

import hashlib
import logging

from automixer_core.corpus.documents import Shard
from automixer_core.corpus.files import (
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    _empty_folders,
    _no_files_error,
    _resolve_uri,
)
from automixer_core.corpus.reading import _iter_json_rows
from automixer_core.errors import CorpusError
from automixer_core.store import Store

logger = logging.getLogger(__name__)


def _shown(items: list[str]) -> str:
    return ", ".join(items)


def _count_and_digest(store: Store, key: str) -> tuple[int, str]:
    """Number of rows and sha256 of the content of one corpus file."""
    lower = key.lower()
    if lower.endswith(JSONL_SUFFIXES):
        h = hashlib.sha256()
        rows = 0
        with store.open(key, "rb") as f:
            for line in f:  # one pass: the lines concatenated are the file's bytes
                h.update(line)
                if line.strip():
                    rows += 1
        return rows, h.hexdigest()
    digest = store.digest(key)
    if lower.endswith(PARQUET_SUFFIXES):
        import pyarrow.parquet as pq

        with store.open(key, "rb") as raw:
            try:
                return int(pq.ParquetFile(raw).metadata.num_rows), digest
            except Exception as exc:
                raise CorpusError(
                    f"{store.uri(key)} is not a readable parquet file: {exc}",
                    fix="re-upload the file, or remove it from the corpus",
                ) from exc
    return sum(1 for _ in _iter_json_rows(store, key, 0, None)), digest


def make_shards(uri: str, max_docs: int, *, allow_empty: bool = False) -> list[Shard]:
    """Cut the corpus into shards of at most ``max_docs`` documents, each within one file.

    Files are taken in sorted key order and cut into consecutive row ranges; the shards cover
    every row exactly once. Reads every file once (to count rows and hash its content).

    Args:
        uri: the corpus (a folder, prefix or single file).
        max_docs: documents per shard.
        allow_empty: skip empty corpus files (no rows, or blank lines only) and folders without
            any file, listing them in a warning, instead of raising.

    Raises:
        CorpusError: no corpus file under ``uri``; with ``allow_empty`` false, empty files or
            empty folders (all named in one message); no document at all.
    """
    if max_docs < 1:
        raise CorpusError(
            f"make_shards got max_docs={max_docs}", expected="max_docs >= 1", fix="pass a positive number"
        )
    store, files, others, single = _resolve_uri(uri)
    if not files:
        raise _no_files_error(uri, others)
    shards = []
    empty_files: list[str] = []
    for key in files:
        rows, digest = _count_and_digest(store, key)
        if rows == 0:
            empty_files.append(key)
        for start in range(0, rows, max_docs):
            stop = min(rows, start + max_docs)
            sd = hashlib.sha256(f"{key}\0{digest}\0{start}\0{stop}".encode()).hexdigest()[:16]
            shards.append(Shard(file=key, start=start, stop=stop, digest=sd))
    empty_dirs = [] if single else _empty_folders(store, files + others)
    if empty_files or empty_dirs:
        what = []
        if empty_files:
            what.append(
                f"{len(empty_files)} empty file(s) (no rows, or blank lines only): {_shown(empty_files)}"
            )
        if empty_dirs:
            what.append(f"{len(empty_dirs)} folder(s) without any file: {_shown(empty_dirs)}")
        if not allow_empty:
            raise CorpusError(
                f"Corpus {uri!r} has " + "; and ".join(what),
                expected="at least one document in every corpus file and at least one file in every domain folder",
                fix="remove them (or write their documents, if a write is still in progress), "
                "or set corpus.allow_empty: true to skip them with a warning",
            )
        logger.warning("Corpus %s: skipping %s (corpus.allow_empty is true)", uri, "; and ".join(what))
    if not shards:
        raise CorpusError(
            f"Corpus {uri!r} holds no documents: every corpus file is empty ({_shown(empty_files)})",
            expected="at least one document",
            fix="point the corpus URI at the folder holding the documents, or write them there first",
        )
    return shards
