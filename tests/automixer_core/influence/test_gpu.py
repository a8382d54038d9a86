"""bf16 autocast against fp32 on CUDA, for grad_dot and DataInf (query vectors and scores).

test_invariance.py::test_cuda_matches_cpu covers fp32 CUDA = fp32 CPU (cosine, all_linear) and
checks only that bf16 correlates (> 0.95) on a deliberately saturated tiny model. Here the whole
pipeline (query vectors and scoring) runs once in fp32 (TF32 off) and once under
``autocast="bf16"`` on a model with the proxy's own initialisation (``build_model``: weights
N(0, 0.02), like a real checkpoint, rather than the conftest models' N(0, 0.2), whose near-one-hot
softmax makes bf16 rounding errors up to 25% of the largest score), and the two are held to a
stated tolerance:

- Pearson correlation over all D×K scores ≥ 0.999;
- max |bf16 − fp32| / max |fp32| ≤ 5e-2.

Why these numbers: bf16 keeps 8 significand bits (relative rounding 2^-9 ≈ 2e-3 per operand)
and the engine accumulates in fp32; through two layers, the loss gradient and the contraction the
errors add up to about 1% of the largest score. Measured with CPU bf16 autocast on this model
shape, over 10 models (d 64 and 128, seeds 0-4) × {grad_dot, datainf} × {embed_head, all_linear}:
Pearson ≥ 0.99992, max relative error ≤ 2.2e-2. The bounds leave 10× margin on 1 − Pearson and
2× on the relative error for CUDA's different kernels (cuBLAS, SDPA). They catch gross mistakes
on the mixed-precision path (a block's contribution lost or mis-scaled, an overflow, a document's
δ mixed with another's), not precision losses as small as bf16's own; autocast silently off is
caught by the first assertion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from automixer_core.influence import InfluenceConfig, build_query_vectors, score_documents
from automixer_core.proxy import ProxyConfig
from automixer_core.proxy.train import build_model
from tests.automixer_core.influence.conftest import VOCAB, WINDOW, make_docs, make_queries

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MIN_PEARSON = 0.999
MAX_REL_ERR = 5e-2


@pytest.fixture()
def no_tf32() -> Iterator[None]:
    """fp32 means fp32: the reference must not run its matmuls in TF32 (10-bit significand)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.usefixtures("no_tf32")
@pytest.mark.parametrize("layers", ["embed_head", "all_linear"])
@pytest.mark.parametrize("estimator", ["grad_dot", "datainf"])
def test_bf16_autocast_matches_fp32_on_cuda(estimator: str, layers: str) -> None:
    shape = ProxyConfig(hidden=128, layers=2, heads=4, kv_heads=2, max_positions=64, seed=0)
    model: Any = build_model(shape, vocab_size=VOCAB, eos_id=0).eval()
    model.cuda()
    tokens = make_docs()  # 1 token to multi-window, padding id included
    docs = [(str(i), d) for i, d in enumerate(tokens)]
    queries = make_queries()  # K = 3, one context longer than the window
    cfg = InfluenceConfig(estimator=estimator, layers=layers, max_length=WINDOW, hessian_samples=len(tokens))

    def run(c: InfluenceConfig) -> np.ndarray:
        qv = build_query_vectors(model, queries, c, hessian_docs=tokens if estimator == "datainf" else None)
        return score_documents(model, docs, qv, c).scores.astype(np.float64)

    ref = run(cfg)
    bf = run(cfg.model_copy(update={"autocast": "bf16"}))
    assert np.isfinite(bf).all() and bf.shape == ref.shape == (len(docs), 3)
    err = np.abs(bf - ref).max() / np.abs(ref).max()
    assert err > 0, "bf16 scores equal the fp32 ones bit for bit: autocast did not take effect"
    pearson = np.corrcoef(bf.ravel(), ref.ravel())[0, 1]
    assert pearson >= MIN_PEARSON, (estimator, layers, pearson, err)
    assert err <= MAX_REL_ERR, (estimator, layers, pearson, err)
