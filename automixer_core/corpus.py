"""Reading corpus documents from jsonl, jsonl.gz or parquet files under any storage URI.

A corpus is a prefix (a local folder, ``s3://bucket/corpus``, ...) or a single file. Every file
under it whose name ends in ``.jsonl``, ``.ndjson``, ``.jsonl.gz``, ``.ndjson.gz`` or ``.parquet``
is a corpus file; other files (READMEs, manifests) are ignored. Files are read in sorted key
order and rows in file order, streaming (one line, or one parquet batch, in memory at a time).

Each document gets:

- ``text`` from the configurable text field;
- ``id`` from the ``id`` field when the row has one, else ``"<file key>:<row>"`` (the file's key
  relative to the corpus URI and the row's index in the file), stable across runs and machines;
- ``group`` from the ``domain`` field when the row has one, else the name of the file's parent
  folder (``corpus/math/part-0.jsonl`` -> ``math``).

``row`` is the 0-based index of the document in its file (blank jsonl lines are not rows), so a
:class:`Shard` (file + row range) names the same documents on every machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import posixpath
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from automixer_core.errors import CorpusError, StorageError
from automixer_core.store import Store

JSONL_SUFFIXES = (".jsonl", ".ndjson")
GZ_SUFFIXES = (".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
CORPUS_SUFFIXES = JSONL_SUFFIXES + GZ_SUFFIXES + PARQUET_SUFFIXES

_PARQUET_BATCH = 1024

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Document:
    """One corpus document.

    Attributes:
        id: the row's ``id`` field, or ``"<file>:<row>"`` when it has none.
        text: the document text.
        group: the row's group field (default ``domain``), or the file's parent folder name.
        file: key of the file relative to the corpus URI (``math/part-00000.jsonl``).
        row: 0-based index of the document within its file.
    """

    id: str
    text: str
    group: str
    file: str
    row: int


@dataclass(frozen=True)
class Shard:
    """A contiguous range of documents of one corpus file: rows ``start`` (inclusive) to ``stop``.

    Attributes:
        file: key of the file relative to the corpus URI.
        start: first row (0-based).
        stop: one past the last row.
        digest: 16 hex digits; a hash of the file key, the file's content digest and the range,
            so it changes when (and only when) the documents it names can have changed.
    """

    file: str
    start: int
    stop: int
    digest: str

    @property
    def num_docs(self) -> int:
        return self.stop - self.start


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


def _shown(items: list[str]) -> str:
    return ", ".join(items)


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


# --- reading ---------------------------------------------------------------------------------


def _field_error(file_uri: str, row: int, field: str, row_obj: dict[str, Any], problem: str) -> CorpusError:
    keys = sorted(row_obj)
    return CorpusError(
        f"{file_uri}: row {row}: field {field!r} {problem} (fields present: {keys})",
        expected=f"a string in field {field!r} on every row",
        fix=f"set text_field to the field that holds the text (one of {keys}), or repair the row",
    )


def _make_document(
    obj: Any,
    *,
    file_key: str,
    file_uri: str,
    row: int,
    folder_group: str,
    text_field: str,
    id_field: str,
    group_field: str,
) -> Document:
    if not isinstance(obj, dict):
        raise CorpusError(
            f"{file_uri}: row {row} is a JSON {type(obj).__name__}, not an object",
            expected=f'one JSON object per line, e.g. {{"{text_field}": "..."}}',
            fix="repair or remove that row",
        )
    if text_field not in obj:
        raise _field_error(file_uri, row, text_field, obj, "is missing")
    text = obj[text_field]
    if not isinstance(text, str):
        raise _field_error(file_uri, row, text_field, obj, f"is of type {type(text).__name__}, not a string")
    doc_id = obj.get(id_field)
    group = obj.get(group_field)
    return Document(
        id=str(doc_id) if doc_id is not None else f"{file_key}:{row}",
        text=text,
        group=str(group) if group not in (None, "") else folder_group,
        file=file_key,
        row=row,
    )


def _iter_json_rows(store: Store, key: str, start: int, stop: int | None) -> Iterator[tuple[int, Any]]:
    """(row, parsed object) for rows ``start <= row < stop`` of a jsonl(.gz) file."""
    file_uri = store.uri(key)
    with store.open(key, "rb") as raw:
        stream: Any = gzip.GzipFile(fileobj=raw) if key.lower().endswith(".gz") else raw
        row = -1
        lineno = 0
        try:
            for line in stream:
                lineno += 1
                if not line.strip():
                    continue
                row += 1
                if row < start:
                    continue
                if stop is not None and row >= stop:
                    return
                try:
                    yield row, json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise CorpusError(
                        f"{file_uri}: row {row} (line {lineno}) is not valid JSON: {exc}",
                        expected="one JSON object per line",
                        fix="repair or remove that line",
                    ) from exc
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            where = "at its start" if lineno == 0 else f"after row {row} (line {lineno})"
            raise CorpusError(
                f"{file_uri}: cannot decompress {where}: {exc}",
                expected="a complete gzip file",
                fix="re-upload the file, or remove it from the corpus",
            ) from exc


def _iter_parquet_rows(
    store: Store, key: str, start: int, stop: int | None, columns: list[str], text_field: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    import pyarrow.parquet as pq

    file_uri = store.uri(key)
    with store.open(key, "rb") as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception as exc:  # pyarrow raises ArrowInvalid (a ValueError) or OSError
            raise CorpusError(
                f"{file_uri} is not a readable parquet file: {exc}",
                fix="re-upload the file, or remove it from the corpus",
            ) from exc
        present = [c for c in columns if c in pf.schema_arrow.names]
        if text_field not in present:
            raise CorpusError(
                f"{file_uri}: row 0: field {text_field!r} is missing (columns present: {pf.schema_arrow.names})",
                expected=f"a string column {text_field!r}",
                fix=f"set text_field to the column that holds the text (one of {pf.schema_arrow.names})",
            )
        row = 0
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH, columns=present):
            n = batch.num_rows
            if row + n <= start:
                row += n
                continue
            for obj in batch.to_pylist():
                if row >= start and (stop is None or row < stop):
                    yield row, obj
                row += 1
                if stop is not None and row >= stop:
                    return


def _iter_file(
    store: Store,
    key: str,
    *,
    start: int = 0,
    stop: int | None = None,
    text_field: str,
    id_field: str,
    group_field: str,
) -> Iterator[Document]:
    file_uri = store.uri(key)
    folder_group = posixpath.basename(posixpath.dirname(store.path(key))) or "default"
    if key.lower().endswith(PARQUET_SUFFIXES):
        rows: Iterable[tuple[int, Any]] = _iter_parquet_rows(
            store, key, start, stop, [text_field, id_field, group_field], text_field
        )
    else:
        rows = _iter_json_rows(store, key, start, stop)
    for row, obj in rows:
        yield _make_document(
            obj,
            file_key=key,
            file_uri=file_uri,
            row=row,
            folder_group=folder_group,
            text_field=text_field,
            id_field=id_field,
            group_field=group_field,
        )


def iter_documents(
    uri: str,
    *,
    text_field: str = "text",
    id_field: str = "id",
    group_field: str = "domain",
    max_docs: int | None = None,
    files: list[str] | None = None,
) -> Iterator[Document]:
    """Stream the documents under ``uri`` (files in sorted key order, rows in file order).

    Args:
        uri: a local folder or file, or any fsspec URI prefix (``s3://bucket/corpus``).
        text_field: the field (jsonl key or parquet column) holding the text.
        id_field: the field holding the document id, when present.
        group_field: the field holding the group label; rows without it take the parent folder name.
        max_docs: stop after this many documents in total.
        files: read only these keys (as returned by :func:`list_corpus_files`).

    Raises:
        CorpusError: no readable corpus file under ``uri``; a row that is not a JSON object or
            lacks a string text field (the message names the file, the row and the field).
    """
    store, found, others = _resolve(uri)
    if not found:
        raise _no_files_error(uri, others)
    if files is not None:
        missing = sorted(set(files) - set(found))
        if missing:
            raise CorpusError(
                f"Corpus {uri!r} has no file(s) {missing}",
                fix="pass keys as returned by list_corpus_files(uri)",
            )
        found = [k for k in found if k in set(files)]
    n = 0
    for key in found:
        for doc in _iter_file(store, key, text_field=text_field, id_field=id_field, group_field=group_field):
            if max_docs is not None and n >= max_docs:
                return
            yield doc
            n += 1


def read_shard(
    uri: str,
    shard: Shard,
    *,
    text_field: str = "text",
    id_field: str = "id",
    group_field: str = "domain",
) -> Iterator[Document]:
    """Stream the documents of ``shard`` (rows ``shard.start`` to ``shard.stop`` of ``shard.file``).

    They are the same documents, with the same ids, as :func:`iter_documents` yields for those rows.
    """

    def gone() -> CorpusError:
        return CorpusError(
            f"Corpus {uri!r} has no file {shard.file!r} (shard {shard.digest})",
            fix="cut the shards again with make_shards(uri, max_docs): the corpus has changed",
        )

    key = shard.file
    inside = _is_corpus_file(key) and not key.startswith("/") and ".." not in key.split("/")
    if inside and not _is_corpus_file(uri):
        store = Store(uri)  # a folder holding the file: read it, no listing of the corpus per shard
    else:  # a corpus that is one file, or a key that does not name a file under the folder
        store, found, _ = _resolve(uri)
        if key not in found:
            raise gone()
    docs = _iter_file(
        store, key, start=shard.start, stop=shard.stop, text_field=text_field, id_field=id_field,
        group_field=group_field,
    )  # fmt: skip
    try:
        first = next(docs)
    except StopIteration:
        return
    except StorageError as exc:  # opening it: the file is gone since the shards were cut
        if isinstance(exc.__cause__, FileNotFoundError):
            raise gone() from exc
        raise
    yield first
    yield from docs


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
