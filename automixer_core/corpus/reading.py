"""Reading corpus documents from jsonl, jsonl.gz or parquet files: rows to :class:`Document`.

Files are read in sorted key order and rows in file order, streaming (one line, or one parquet
batch, in memory at a time).

Each document gets:

- ``text`` from the configurable text field;
- ``id`` from the ``id`` field when the row has one, else ``"<file key>:<row>"`` (the file's key
  relative to the corpus URI and the row's index in the file), stable across runs and machines;
- ``group`` from the ``domain`` field when the row has one, else the name of the file's parent
  folder (``corpus/math/part-0.jsonl`` -> ``math``).

:func:`read_shard` reads the rows of one :class:`Shard` and yields the same documents, with the
same ids, as :func:`iter_documents` does for those rows.
"""

from __future__ import annotations

import gzip
import json
import posixpath
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from automixer_core.corpus.documents import Document, Shard
from automixer_core.corpus.files import PARQUET_SUFFIXES, _is_corpus_file, _no_files_error, _resolve
from automixer_core.errors import CorpusError, StorageError
from automixer_core.store import Store

_PARQUET_BATCH = 1024


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
