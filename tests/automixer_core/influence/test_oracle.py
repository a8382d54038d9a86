"""Every estimator × parameter selection × model family against the per-document autograd oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automixer_core.influence import InfluenceConfig, build_query_vectors, score_documents, select_blocks
from tests.automixer_core.influence import oracle as O
from tests.automixer_core.influence.conftest import (
    ARCHS,
    WINDOW,
    expected_names,
    make_docs,
    make_model,
    make_queries,
)

TOL = 1e-4


def rel(got: torch.Tensor | np.ndarray, want: torch.Tensor) -> float:
    g = torch.as_tensor(np.asarray(got), dtype=torch.float64)
    return float((g - want).norm() / want.norm())


def assert_cols(got: np.ndarray, want: torch.Tensor) -> None:
    """Relative error ≤ TOL per query column (not only overall)."""
    for k in range(want.shape[1]):
        assert rel(got[:, k], want[:, k]) <= TOL, (k, got[:, k], want[:, k])


@pytest.mark.parametrize("layers", ["embed_head", "all_linear"])
@pytest.mark.parametrize("arch", ARCHS)
def test_estimators_match_autograd_oracle(arch: str, layers: str) -> None:
    model = make_model(arch)
    names = expected_names(model, arch, layers)
    assert [b.name for b in select_blocks(model, layers)] == names
    docs, queries = make_docs(), make_queries()
    m64 = O.double_copy(model)
    g = O.doc_grads(m64, names, [d for d in docs if len(d) >= 2], WINDOW)  # [D', P]
    keep = [i for i, d in enumerate(docs) if len(d) >= 2]
    v = torch.stack([O.query_grad(m64, names, ex, WINDOW) for ex in queries.values()])  # [K, P]
    loss = torch.tensor([O.doc_loss(m64, docs[i], WINDOW).item() for i in keep], dtype=torch.float64)
    hess = docs[3:7]
    g_h = O.doc_grads(m64, names, hess, WINDOW)
    slices = O.block_slices(m64, names)
    want_w = {
        "grad_dot": v,
        "cosine": v / v.norm(dim=1, keepdim=True),
        "datainf": torch.stack([O.datainf_w(vk, g_h, slices) for vk in v]),
    }
    for est, w in want_w.items():
        cfg = InfluenceConfig(
            estimator=est, layers=layers, max_length=WINDOW, batch_size=3, hessian_samples=4
        )
        qv = build_query_vectors(model, queries, cfg, hessian_docs=hess)
        got_w = torch.stack([O.flat(qv.blocks, names, k) for k in range(qv.k)])
        assert rel(got_w, w) <= TOL, est
        res = score_documents(model, [(f"d{i}", d) for i, d in enumerate(docs)], qv, cfg)
        assert res.doc_ids == [f"d{i}" for i in range(len(docs))]
        want = g @ w.T
        if est == "cosine":
            gn = g.norm(dim=1)
            want = want / gn[:, None]
            assert res.grad_norm is not None
            assert rel(res.grad_norm[keep], gn) <= TOL
            assert res.grad_norm[0] == 0.0
        else:
            assert res.grad_norm is None
        assert_cols(res.scores[keep], want)
        assert rel(res.loss[keep], loss) <= 1e-6
        assert np.isnan(res.loss[0]) and (res.scores[0] == 0).all()  # 1-token document: no prediction
        assert res.n_tokens.tolist() == [len(d) for d in docs]


@pytest.mark.parametrize(
    ("arch", "patterns"),
    [
        ("llama_untied", ["model.layers.1.mlp.*", r"re:model\.layers\.0\.self_attn\.[qk]_proj"]),
        ("gpt2", ["transformer.h.0.attn.c_attn", "transformer.wpe"]),  # Conv1D + position embedding
        ("llama_tied", ["lm_head"]),  # the tied matrix: embedding and head contributions add
    ],
)
def test_pattern_selection_matches_oracle(arch: str, patterns: list[str]) -> None:
    model = make_model(arch)
    blocks = select_blocks(model, patterns)
    names = [b.name for b in blocks]
    expected = {
        "llama_untied": [
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight",
            "model.layers.1.mlp.gate_proj.weight",
            "model.layers.1.mlp.up_proj.weight",
            "model.layers.1.mlp.down_proj.weight",
        ],
        "gpt2": ["transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight"],
        "llama_tied": ["model.embed_tokens.weight"],
    }[arch]
    assert names == expected
    if arch == "llama_tied":
        assert sorted(u.kind for u in blocks[0].uses) == ["embedding", "linear"]
    docs, queries = make_docs(), make_queries()
    keep = [d for d in docs if len(d) >= 2]
    m64 = O.double_copy(model)
    g = O.doc_grads(m64, names, keep, WINDOW)
    v = torch.stack([O.query_grad(m64, names, ex, WINDOW) for ex in queries.values()])
    cfg = InfluenceConfig(estimator="cosine", layers=patterns, max_length=WINDOW, batch_size=4)
    qv = build_query_vectors(model, queries, cfg)
    w = v / v.norm(dim=1, keepdim=True)
    assert rel(torch.stack([O.flat(qv.blocks, names, k) for k in range(qv.k)]), w) <= TOL
    res = score_documents(model, [(str(i), d) for i, d in enumerate(keep)], qv, cfg)
    gn = g.norm(dim=1)
    assert res.grad_norm is not None and rel(res.grad_norm, gn) <= TOL
    assert_cols(res.scores, (g @ w.T) / gn[:, None])
    # a batch without padding (no attention mask is passed) gives the same per-document scores
    same = [
        torch.randint(0, 96, (12,), generator=torch.Generator().manual_seed(s)).tolist() for s in range(3)
    ]
    g2 = O.doc_grads(m64, names, same, WINDOW)
    res2 = score_documents(model, [(str(i), d) for i, d in enumerate(same)], qv, cfg)
    assert res2.grad_norm is not None and rel(res2.grad_norm, g2.norm(dim=1)) <= TOL
    assert_cols(res2.scores, (g2 @ w.T) / g2.norm(dim=1)[:, None])


@pytest.mark.parametrize("arch", ["llama_tied", "gpt2"])
def test_mean_query_loss_matches_oracle(arch: str) -> None:
    """query_loss: mean divides each query example's summed NLL by its continuation length."""
    model = make_model(arch)
    queries = make_queries()
    assert len({len(c) for ex in queries.values() for _, c in ex}) > 1  # lengths differ: the test can fail
    names = [b.name for b in select_blocks(model, "embed_head")]
    m64 = O.double_copy(model)
    want = torch.stack([O.query_grad(m64, names, ex, WINDOW, per_token=True) for ex in queries.values()])
    summed = torch.stack([O.query_grad(m64, names, ex, WINDOW) for ex in queries.values()])
    cfg = InfluenceConfig(estimator="grad_dot", query_loss="mean", max_length=WINDOW, batch_size=4)
    qv = build_query_vectors(model, queries, cfg)
    got = torch.stack([O.flat(qv.blocks, names, k) for k in range(qv.k)])
    assert rel(got, want) <= TOL
    assert rel(got, summed) > 0.1  # and it is not the summed loss's vector
