"""Per-shard score files: one parquet file per (checkpoint, query config, shard) (DESIGN §3).

Columns: ``doc_id`` (string), one float32 column ``score__{query}`` per query, ``loss``
(float32), ``n_tokens`` (int64), ``grad_norm`` (float32, null when not computed). The query
names and provenance strings are kept in the schema metadata under ``automixer``.
Written with pyarrow to bytes or a local path; object storage is the storage layer's business.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from automixer_core.errors import InfluenceError
from automixer_core.influence.scorer import ScoreResult

SCORE_PREFIX = "score__"
_META_KEY = b"automixer"


def scores_table(result: ScoreResult) -> pa.Table:
    """The result as an Arrow table (schema described in the module docstring)."""
    d = len(result.doc_ids)
    cols: dict[str, pa.Array] = {"doc_id": pa.array(result.doc_ids, pa.string())}
    for j, name in enumerate(result.query_names):
        cols[SCORE_PREFIX + name] = pa.array(np.asarray(result.scores[:, j], np.float32), pa.float32())
    cols["loss"] = pa.array(np.asarray(result.loss, np.float32), pa.float32())
    cols["n_tokens"] = pa.array(np.asarray(result.n_tokens, np.int64), pa.int64())
    gn = result.grad_norm
    cols["grad_norm"] = (
        pa.array(np.asarray(gn, np.float32), pa.float32()) if gn is not None else pa.nulls(d, pa.float32())
    )
    meta = {"query_names": result.query_names, "metadata": result.metadata, "has_grad_norm": gn is not None}
    return pa.table(cols).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def write_scores_parquet(result: ScoreResult, path: str | os.PathLike[str] | None = None) -> bytes | None:
    """Write the result as parquet to ``path``, or return the file's bytes when ``path`` is None."""
    table = scores_table(result)
    if path is not None:
        pq.write_table(table, os.fspath(path))
        return None
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def read_scores_parquet(source: bytes | str | os.PathLike[str]) -> ScoreResult:
    """Read a file written by :func:`write_scores_parquet` (bytes or a local path)."""
    table = pq.read_table(io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source))
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise InfluenceError(
            "parquet file has no AutoMixer score metadata", expected="a file written by write_scores_parquet"
        )
    meta = json.loads(raw)
    names = list(meta["query_names"])
    scores = (
        np.stack([table.column(SCORE_PREFIX + n).to_numpy() for n in names], axis=1).astype(np.float32)
        if names
        else np.zeros((table.num_rows, 0), np.float32)
    )
    return ScoreResult(
        doc_ids=table.column("doc_id").to_pylist(),
        query_names=names,
        scores=scores,
        loss=table.column("loss").to_numpy().astype(np.float32),
        n_tokens=table.column("n_tokens").to_numpy().astype(np.int64),
        grad_norm=table.column("grad_norm").to_numpy().astype(np.float32) if meta["has_grad_norm"] else None,
        metadata=dict(meta["metadata"]),
    )
