"""Reading corpus documents from jsonl, jsonl.gz or parquet files under any storage URI.

A corpus is a prefix (a local folder, ``s3://bucket/corpus``, ...) or a single file; every
``.jsonl``, ``.ndjson``, ``.jsonl.gz``, ``.ndjson.gz`` or ``.parquet`` file under it is read.

- :mod:`.documents`: :class:`Document` (one document: id, text, group, file, row) and
  :class:`Shard` (a row range of one file, with its digest).
- :mod:`.files`: finding the corpus files under a URI (:func:`list_corpus_files`) and the digest
  of one (:func:`file_digest`).
- :mod:`.reading`: rows to documents, their ids and groups (:func:`iter_documents`,
  :func:`read_shard`).
- :mod:`.shards`: cutting the corpus into shards (:func:`make_shards`).
"""

from automixer_core.corpus.documents import Document, Shard
from automixer_core.corpus.files import (
    CORPUS_SUFFIXES,
    GZ_SUFFIXES,
    JSONL_SUFFIXES,
    PARQUET_SUFFIXES,
    file_digest,
    list_corpus_files,
)
from automixer_core.corpus.reading import iter_documents, read_shard
from automixer_core.corpus.shards import make_shards

__all__ = [
    "CORPUS_SUFFIXES",
    "GZ_SUFFIXES",
    "JSONL_SUFFIXES",
    "PARQUET_SUFFIXES",
    "Document",
    "Shard",
    "file_digest",
    "iter_documents",
    "list_corpus_files",
    "make_shards",
    "read_shard",
]
