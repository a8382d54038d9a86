"""Parameter selection and windowing rules."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from automixer_core.errors import InfluenceError, ModelError
from automixer_core.influence import InfluenceConfig, build_query_vectors, select_blocks
from automixer_core.influence.windows import batch_rows, collate, document_rows, query_row
from tests.automixer_core.influence.conftest import make_model


def test_embed_head_blocks_per_family() -> None:
    tied = select_blocks(make_model("llama_tied"), "embed_head")
    assert [b.name for b in tied] == ["model.embed_tokens.weight"]
    assert sorted((u.kind, u.module_name) for u in tied[0].uses) == [
        ("embedding", "model.embed_tokens"),
        ("linear", "lm_head"),
    ]
    assert tied[0].uses[0].padding_idx == 0 or tied[0].uses[1].padding_idx == 0
    neox = select_blocks(make_model("neox"), "embed_head")
    assert [len(b.uses) for b in neox] == [1, 1]
    gpt2 = select_blocks(make_model("gpt2"), "all_linear")
    c_attn = next(b for b in gpt2 if b.name == "transformer.h.0.attn.c_attn.weight")
    assert c_attn.transposed and c_attn.shape == (32, 96) and c_attn.internal_shape == (96, 32)


def test_unsupported_modules_raise_model_error() -> None:
    model: Any = make_model("llama_untied")
    with pytest.raises(ModelError, match="LlamaRMSNorm"):
        select_blocks(model, ["model.layers.0.*"])  # matches input_layernorm too
    with pytest.raises(ModelError, match="match no module"):
        select_blocks(model, ["encoder.*"])

    class ScaledEmbedding(nn.Embedding):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2.0

    emb = model.model.embed_tokens
    model.model.embed_tokens = ScaledEmbedding(emb.num_embeddings, emb.embedding_dim)
    with pytest.raises(ModelError, match="ScaledEmbedding"):
        select_blocks(model, "embed_head")

    class MyLinear(nn.Linear):
        pass

    model = make_model("llama_untied")
    model.model.layers[1].mlp.up_proj = MyLinear(32, 64, bias=False)
    with pytest.raises(ModelError, match="MyLinear"):
        select_blocks(model, "all_linear")

    class NoHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(3, 2)

        def get_input_embeddings(self) -> nn.Module:
            return self.emb

        def get_output_embeddings(self) -> None:
            return None

    with pytest.raises(ModelError, match="no output head"):
        select_blocks(NoHead(), "embed_head")


def test_document_windows_cover_every_prediction_once() -> None:
    ids = list(range(1, 41))
    rows = document_rows(0, ids, 16)
    predicted = [r.input_ids[p + 1] for r in rows for p in range(r.target_start, len(r.input_ids) - 1)]
    assert predicted == ids[1:]
    assert all(abs(r.weight - 1 / 39) < 1e-15 for r in rows)
    assert [r.first for r in rows] == [True, False, False] and [r.last for r in rows] == [False, False, True]
    assert document_rows(0, [5], 16) == []
    batches = list(batch_rows(iter([rows, document_rows(1, ids[:5], 16)]), 2))
    assert [[r.seq for r in b] for b in batches] == [[0, 0], [0], [1]]  # a long doc gets batches of its own
    b = collate(batches[0], "left")
    assert b.seg_rows == [(0, 2)] and b.seg_first == [True] and b.seg_last == [False]


def test_query_rows_truncate_context_from_the_left() -> None:
    r = query_row(0, list(range(1, 30)), [90, 91, 92], 16)
    assert len(r.input_ids) == 16 and r.input_ids[-3:] == (90, 91, 92) and r.input_ids[0] == 17
    assert [r.input_ids[p + 1] for p in range(r.target_start, 15)] == [90, 91, 92]
    b = collate([r, query_row(1, [4], [5], 16)], "left")
    assert b.targets[1].tolist()[-1] == -100 and b.targets[1].tolist()[-2] == 5
    assert b.position_ids[1].tolist()[-2:] == [0, 1]
    for ctx, cont, msg in [
        ([], [1], "empty context"),
        ([1], [], "empty continuation"),
        ([1], list(range(16)), "continuation"),
    ]:
        with pytest.raises(InfluenceError, match=msg):
            query_row(0, ctx, cont, 16)
    model = make_model("llama_untied")
    with pytest.raises(InfluenceError, match="no query examples"):
        build_query_vectors(model, {"arc": []}, InfluenceConfig(estimator="grad_dot", max_length=16))
