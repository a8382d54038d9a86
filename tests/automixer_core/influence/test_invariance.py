"""Scores do not depend on batch composition, padding side, order, chunking or norm algorithm."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from automixer_core.influence import InfluenceConfig, build_query_vectors, hooks, score_documents
from automixer_core.influence.hooks import CaptureEngine
from automixer_core.influence.params import select_blocks
from automixer_core.influence.windows import batch_rows, collate, document_rows
from tests.automixer_core.influence import oracle as O
from tests.automixer_core.influence.conftest import WINDOW, make_docs, make_model, make_queries


def close(a: np.ndarray, b: np.ndarray, tol: float = 1e-5) -> bool:
    return float(np.abs(a - b).max()) <= tol * max(float(np.abs(b).max()), 1e-12)


@pytest.mark.parametrize(("arch", "layers"), [("llama_tied", "embed_head"), ("gpt2", "all_linear")])
def test_batch_composition_padding_and_order(arch: str, layers: str) -> None:
    model = make_model(arch)
    docs = [(f"d{i}", d) for i, d in enumerate(make_docs())]
    base = InfluenceConfig(estimator="cosine", layers=layers, max_length=WINDOW, batch_size=4)
    qv = build_query_vectors(model, make_queries(), base)
    ref = score_documents(model, docs, qv, base)
    assert ref.grad_norm is not None
    variants = [
        base.model_copy(update={"padding_side": "left"}),
        base.model_copy(update={"batch_size": 1}),
        base.model_copy(update={"batch_size": 64, "sort_buffer": 1}),
    ]
    for cfg in variants:
        res = score_documents(model, docs, qv, cfg)
        assert res.grad_norm is not None
        assert close(res.scores, ref.scores) and close(res.grad_norm, ref.grad_norm), cfg
        assert close(res.loss[1:], ref.loss[1:])
    rev = score_documents(model, docs[::-1], qv, base.model_copy(update={"padding_side": "left"}))
    assert rev.doc_ids == [d for d, _ in docs[::-1]]
    assert close(rev.scores[::-1], ref.scores)
    with torch.no_grad():  # a caller's no_grad() does not switch the engine's backward off
        inside = score_documents(model, docs, qv, base)
    assert close(inside.scores, ref.scores) and np.abs(ref.scores).max() > 0
    for i in (2, 5):  # alone (no padding at all) vs among others
        alone = score_documents(model, [docs[i]], qv, base)
        assert close(alone.scores[0], ref.scores[i])


@pytest.mark.parametrize("tile_bytes", [None, 256])
@pytest.mark.parametrize("arch", ["llama_tied", "gpt2", "llama_untied"])
def test_engine_paths_agree_with_oracle(
    arch: str, tile_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gram vs materialized norms, K=1 direct vs K≥2 materialized contractions, tiny chunks,
    documents longer than a batch (gradient carried between batches), and δᵀa formed in tiles of
    one output feature (256 B) within chunks of many rows, where a segment's rows are merged per tile."""
    if tile_bytes is not None:
        monkeypatch.setattr(hooks, "CPU_TILE_BYTES", tile_bytes)
    model = make_model(arch)
    window = 8
    g = torch.Generator().manual_seed(7)
    docs = [torch.randint(0, 96, (n,), generator=g).tolist() for n in (50, 3, 12, 30, 9)]  # 50 → 7 windows
    layers = "all_linear"
    qs = make_queries()
    one = {"arc": qs["arc"]}
    m64 = O.double_copy(model)
    pnames = [b.name for b in select_blocks(model, layers)]
    grads = O.doc_grads(m64, pnames, docs, window)
    gn = grads.norm(dim=1)
    for qset in (one, qs):
        v = torch.stack([O.query_grad(m64, pnames, ex, window) for ex in qset.values()])
        w = v / v.norm(dim=1, keepdim=True)
        want = (grads @ w.T) / gn[:, None]
        for method, bs, chunk in [
            ("gram", 16, 256.0),
            ("materialize", 16, 0.001),
            ("auto", 2, 256.0),
            ("gram", 3, 0.001),
        ]:
            cfg = InfluenceConfig(
                estimator="cosine",
                layers=layers,
                max_length=window,
                batch_size=bs,
                norm_method=method,
                chunk_mb=chunk,
            )
            qv = build_query_vectors(model, qset, cfg)
            res = score_documents(model, [(str(i), d) for i, d in enumerate(docs)], qv, cfg)
            assert res.grad_norm is not None
            assert float(np.abs(res.grad_norm - gn.numpy()).max() / gn.max()) <= 1e-4, (method, bs)
            err = np.abs(res.scores - want.numpy()).max() / np.abs(want.numpy()).max()
            assert err <= 1e-4, (method, bs, chunk, err)


def test_weights_frozen_and_state_restored() -> None:
    model: Any = make_model("llama_untied").train()
    model.model.layers[0].mlp.up_proj.weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    blocks = select_blocks(model, "all_linear")
    docs = make_docs()
    rows = batch_rows((document_rows(i, d, WINDOW) for i, d in enumerate(docs)), 8)
    seen = []
    with CaptureEngine(model, blocks, queries=[torch.zeros(1, *b.internal_shape) for b in blocks]) as eng:
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
        for r in rows:
            eng.run(collate(r, "right"))
            seen.append(all(p.grad is None for p in model.parameters()))
    assert all(seen)
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


def test_bf16_autocast_code_path_runs_on_cpu() -> None:
    model = make_model("llama_untied")
    docs = [(str(i), d) for i, d in enumerate(make_docs())]
    cfg = InfluenceConfig(estimator="grad_dot", layers="embed_head", max_length=WINDOW)
    qv = build_query_vectors(model, make_queries(), cfg)
    ref = score_documents(model, docs, qv, cfg)
    res = score_documents(model, docs, qv, cfg.model_copy(update={"autocast": "bf16"}))
    assert res.scores.dtype == np.float32 and np.isfinite(res.scores).all()
    corr = np.corrcoef(res.scores[1:].ravel(), ref.scores[1:].ravel())[0, 1]
    assert corr > 0.95


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    model = make_model("llama_tied")
    docs = [(str(i), d) for i, d in enumerate(make_docs())]
    cfg = InfluenceConfig(estimator="cosine", layers="all_linear", max_length=WINDOW)
    qv = build_query_vectors(model, make_queries(), cfg)
    ref = score_documents(model, docs, qv, cfg)
    cuda = model.cuda()
    torch.backends.cuda.matmul.allow_tf32 = False
    res = score_documents(cuda, docs, qv, cfg)
    assert close(res.scores, ref.scores, 1e-4)
    bf = score_documents(cuda, docs, qv, cfg.model_copy(update={"autocast": "bf16"}))
    assert np.corrcoef(bf.scores[1:].ravel(), ref.scores[1:].ravel())[0, 1] > 0.95
