"""DataInf's w against the explicit damped inverse (1/n) Σ_i (g_i g_iᵀ + λ_l I)⁻¹ v, per layer."""

from __future__ import annotations

import pytest
import torch

from automixer_core.influence import InfluenceConfig, build_query_vectors, hooks, score_documents
from tests.automixer_core.influence import oracle as O
from tests.automixer_core.influence.conftest import WINDOW, make_docs, make_model, make_queries

# two small layers (512 and 512 entries): explicit 512×512 systems are cheap to solve
LAYERS = ["model.layers.0.self_attn.k_proj", "model.layers.1.self_attn.v_proj"]
NAMES = [p + ".weight" for p in LAYERS]


@pytest.mark.parametrize("tile_bytes", [None, 256])
def test_datainf_equals_explicit_inverse_per_layer(
    tile_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also with δᵀa in tiles of one output feature (the weighted sums and norms add up per tile)."""
    if tile_bytes is not None:
        monkeypatch.setattr(hooks, "CPU_TILE_BYTES", tile_bytes)
    model = make_model("llama_untied")
    docs, queries = make_docs(), make_queries()
    hess = [d for d in docs if len(d) >= 2]  # n = 7, incl. multi-window documents
    cfg = InfluenceConfig(
        estimator="datainf", layers=LAYERS, max_length=WINDOW, batch_size=2, hessian_samples=50
    )
    qv = build_query_vectors(model, queries, cfg, hessian_docs=iter(hess))
    assert qv.metadata["hessian_n"] == str(len(hess))
    m64 = O.double_copy(model)
    g = O.doc_grads(m64, NAMES, hess, WINDOW)
    sl = O.block_slices(m64, NAMES)
    for k, ex in enumerate(queries.values()):
        v = O.query_grad(m64, NAMES, ex, WINDOW)
        want = torch.cat([O.datainf_w_explicit(v[s], g[:, s], damping=0.1) for s in sl])
        got = O.flat(qv.blocks, NAMES, k)
        assert float((got - want).norm() / want.norm()) <= 1e-4
        # and it is not just the gradient: the inverse Hessian changes the direction
        cos = float(got @ v / (got.norm() * v.norm()))
        assert cos < 0.999
    lambdas = [float(x) for x in qv.metadata["lambdas"].strip("[]").split(",")]
    for s, lam in zip(sl, lambdas, strict=True):
        assert abs(lam - 0.1 * float(g[:, s].square().sum(1).mean()) / (s.stop - s.start)) <= 1e-5 * lam


def test_datainf_sign_helpful_is_positive() -> None:
    """A document equal to a query's own text helps that benchmark: positive score."""
    model = make_model("llama_untied")
    ctx, cont = [5, 17, 33, 2, 8, 61, 40], [12, 70, 3, 44]
    cfg = InfluenceConfig(estimator="datainf", layers="embed_head", max_length=WINDOW, hessian_samples=8)
    qv = build_query_vectors(model, {"b": [(ctx, cont)]}, cfg, hessian_docs=make_docs())
    res = score_documents(model, [("self", ctx + cont)], qv, cfg)
    assert res.scores[0, 0] > 0
