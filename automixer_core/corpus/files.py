"""Finding the corpus files under a storage URI, and digesting their content.

A corpus is a prefix (a local folder, ``s3://bucket/corpus``, ...) or a single file. Every file
under it whose name ends in ``.jsonl``, ``.ndjson``, ``.jsonl.gz``, ``.ndjson.gz`` or ``.parquet``
is a corpus file; other files (READMEs, manifests) are ignored. Keys are listed in sorted order.
"""

from __future__ import annotations

import posixpath

from automixer_core.errors import CorpusError
from automixer_core.store import Store

JSONL_SUFFIXES = (".jsonl", ".ndjson")
GZ_SUFFIXES = (".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
CORPUS_SUFFIXES = JSONL_SUFFIXES + GZ_SUFFIXES + PARQUET_SUFFIXES


def _is_corpus_file(key: str) -> bool:
    name = posixpath.basename(key).lower()
    return name.endswith(CORPUS_SUFFIXES) and not name.startswith(".")


def _resolve_uri(uri: str) -> tuple[Store, list[str], list[str], bool]:
    """:func:`_resolve`, plus whether the URI named a single file."""
    uri = str(uri)
    single = False
    try:
        store = Store(uri)
        if store.fs.isfile(store.path()):
            parent, name = posixpath.split(uri.rstrip("/"))
            store = Store(parent or ".")
            keys = [name]
            single = True
        else:
            keys = store.list("")
    except Exception as exc:  # StorageError, or a client error from the isfile probe
        raise CorpusError(
            f"Cannot list corpus {uri!r}: {type(exc).__name__}: {exc}",
            fix="check the corpus URI, that the storage is reachable and the credentials in the environment",
        ) from exc
    files = [k for k in keys if _is_corpus_file(k)]
    others = [k for k in keys if not _is_corpus_file(k)]
    return store, files, others, single


def _resolve(uri: str) -> tuple[Store, list[str], list[str]]:
    """The store to read from, the corpus-file keys under it and the other keys (for messages).

    A URI that names a single file becomes a store at its parent folder with that one key.
    """
    store, files, others, _ = _resolve_uri(uri)
    return store, files, others


def _empty_folders(store: Store, keys: list[str]) -> list[str]:
    """Folders under the store's root that hold no file at all (outermost ones only, ``a/`` style).

    Hidden folders (a name starting with ``.``) are ignored. On object stores a folder exists
    only as a key prefix or a zero-byte ``folder/`` marker, so only such markers can be empty.
    """
    root = store.path().rstrip("/")
    try:
        found = store.fs.find(root, withdirs=True, detail=True)
    except Exception as exc:
        raise CorpusError(
            f"Cannot list the folders of corpus {store.uri()!r}: {type(exc).__name__}: {exc}",
            fix="check the corpus URI, that the storage is reachable and the credentials in the environment",
        ) from exc
    prefixes = set()
    for key in keys:
        parts = key.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            prefixes.add("/".join(parts[:i]))
    empty = []
    for path, info in found.items():
        if info.get("type") != "directory":
            continue
        rel = posixpath.relpath(str(path).rstrip("/"), root)
        if rel in (".", "") or rel.startswith("..") or any(p.startswith(".") for p in rel.split("/")):
            continue
        if rel not in prefixes:
            empty.append(rel)
    outer = [d for d in sorted(empty) if not any(d.startswith(e + "/") for e in empty if e != d)]
    return [d + "/" for d in outer]


def _no_files_error(uri: str, others: list[str]) -> CorpusError:
    if others:
        shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
        found = f"Corpus {uri!r} holds no readable corpus files (found only: {shown})"
    else:
        found = f"Corpus {uri!r} is empty or does not exist"
    return CorpusError(
        found,
        expected=f"files ending in {', '.join(CORPUS_SUFFIXES)} under the prefix",
        fix="point the corpus URI at the folder (or file) holding the documents, "
        "or write the documents there as jsonl/parquet first",
    )


def list_corpus_files(uri: str) -> list[str]:
    """Keys (relative to ``uri``) of the corpus files under ``uri``, sorted.

    Raises:
        CorpusError: the prefix is empty, missing or holds no jsonl/jsonl.gz/parquet file.
    """
    _, files, others = _resolve(uri)
    if not files:
        raise _no_files_error(uri, others)
    return files


def file_digest(uri: str, key: str) -> str:
    """sha256 (hex) of the content of corpus file ``key`` (as listed by :func:`list_corpus_files`)."""
    store, files, _ = _resolve(uri)
    if key not in files:
        raise CorpusError(
            f"Corpus {uri!r} has no file {key!r}", fix="pass a key as returned by list_corpus_files(uri)"
        )
    return store.digest(key)
