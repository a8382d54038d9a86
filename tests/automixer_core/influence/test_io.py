"""Query-vector safetensors files, per-shard parquet score files, config validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from pydantic import ValidationError

from automixer_core.errors import InfluenceError
from automixer_core.influence import (
    InfluenceConfig,
    QueryVectors,
    build_query_vectors,
    read_scores_parquet,
    score_documents,
    write_scores_parquet,
)
from tests.automixer_core.influence.conftest import WINDOW, make_docs, make_model, make_queries


def test_query_vectors_roundtrip_and_metadata(tmp_path: Path) -> None:
    model = make_model("gpt2")
    cfg = InfluenceConfig(
        estimator="datainf", layers=["transformer.h.*.mlp.c_fc"], max_length=WINDOW, hessian_samples=3
    )
    qv = build_query_vectors(
        model,
        make_queries(),
        cfg,
        hessian_docs=make_docs(),
        checkpoint_fingerprint="ckpt-abc",
        benchmark_digests={"arc": "d1", "piqa": "d2"},
    )
    assert qv.names == ["arc", "piqa", "long"]
    assert qv.blocks["transformer.h.0.mlp.c_fc.weight"].shape == (
        3,
        32,
        128,
    )  # Conv1D layout [K, d_in, d_out]
    data = qv.to_bytes()
    back = QueryVectors.from_bytes(data)
    assert (
        back.names == qv.names and back.estimator == "datainf" and back.layers == cfg.layers and not back.adam
    )
    assert back.metadata["checkpoint_fingerprint"] == "ckpt-abc"
    assert (
        '"arc": "d1"' in back.metadata["benchmark_digests"]
        and '"long": ""' in back.metadata["benchmark_digests"]
    )
    assert back.metadata["hessian_n"] == "3"
    assert all(torch.equal(back.blocks[n], qv.blocks[n]) for n in qv.blocks)
    qv.save(tmp_path / "q.safetensors")
    assert QueryVectors.load(tmp_path / "q.safetensors").names == qv.names
    sub = qv.select(["long", "arc"])
    assert torch.equal(
        sub.blocks["transformer.h.1.mlp.c_fc.weight"][1], qv.blocks["transformer.h.1.mlp.c_fc.weight"][0]
    )
    with pytest.raises(InfluenceError, match="absent"):
        qv.select(["hellaswag"])
    # scoring with a subset equals the subset of the columns
    docs = [(str(i), d) for i, d in enumerate(make_docs())]
    full = score_documents(model, docs, qv, cfg)
    part = score_documents(model, docs, sub, cfg)
    np.testing.assert_allclose(part.scores, full.scores[:, [2, 0]], rtol=1e-5, atol=1e-7)


def test_scoring_rejects_mismatched_queries() -> None:
    model = make_model("llama_untied")
    cfg = InfluenceConfig(estimator="grad_dot", layers="embed_head", max_length=WINDOW)
    qv = build_query_vectors(model, {"arc": make_queries()["arc"]}, cfg)
    with pytest.raises(InfluenceError, match="estimator=grad_dot"):
        score_documents(model, [], qv, cfg.model_copy(update={"estimator": "cosine"}))
    other = make_model("neox")
    with pytest.raises(InfluenceError, match="selected parameters"):
        score_documents(other, [], qv, cfg)


def test_scores_parquet_roundtrip(tmp_path: Path) -> None:
    model = make_model("llama_tied")
    docs = [(f"doc-{i}", d) for i, d in enumerate(make_docs())]
    for est in ("cosine", "grad_dot"):
        cfg = InfluenceConfig(estimator=est, layers="embed_head", max_length=WINDOW)
        res = score_documents(model, docs, build_query_vectors(model, make_queries(), cfg), cfg)
        data = write_scores_parquet(res)
        assert isinstance(data, bytes)
        back = read_scores_parquet(data)
        assert back.doc_ids == res.doc_ids and back.query_names == res.query_names
        np.testing.assert_array_equal(back.scores, res.scores)
        np.testing.assert_array_equal(back.loss, res.loss)
        np.testing.assert_array_equal(back.n_tokens, res.n_tokens)
        assert (back.grad_norm is None) == (res.grad_norm is None)
        path = tmp_path / f"{est}.parquet"
        assert write_scores_parquet(res, path) is None
        table = pq.read_table(path)
        assert table.column_names == [
            "doc_id",
            "score__arc",
            "score__piqa",
            "score__long",
            "loss",
            "n_tokens",
            "grad_norm",
        ]
        assert str(table.schema.field("score__arc").type) == "float"
        assert read_scores_parquet(path).metadata["estimator"] == est
    empty = score_documents(model, [], build_query_vectors(model, make_queries(), cfg), cfg)
    assert read_scores_parquet(write_scores_parquet(empty) or b"").scores.shape == (0, 3)


def test_config_validation() -> None:
    assert InfluenceConfig().estimator == "datainf" and InfluenceConfig().layers == "embed_head"
    with pytest.raises(ValidationError, match="estimator"):
        InfluenceConfig(estimator="tracin")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="extra"):
        InfluenceConfig(hessian=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="layers"):
        InfluenceConfig(layers=[])
    with pytest.raises(ValidationError, match="max_length"):
        InfluenceConfig(max_length=1)
    assert InfluenceConfig(layers=["a.*"]).layers_key() == "patterns:a.*"


def test_datainf_needs_documents() -> None:
    model = make_model("llama_untied")
    cfg = InfluenceConfig(estimator="datainf", max_length=WINDOW)
    with pytest.raises(InfluenceError, match="hessian_docs"):
        build_query_vectors(model, make_queries(), cfg)
    with pytest.raises(InfluenceError, match="empty"):
        build_query_vectors(model, make_queries(), cfg, hessian_docs=[[1]])
