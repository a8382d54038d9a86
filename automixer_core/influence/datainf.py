"""DataInf query vectors (Kwon et al. 2024; AutoMixer's estimator, DESIGN §1.3 and §2).

Per block (layer) l, with a Hessian sample of n documents and their gradients g_il:

    λ_l = damping · (1/n) Σ_i ‖g_il‖² / d_l
    c_il = (v_l · g_il) / (λ_l + ‖g_il‖²)
    u_l = (1/n) Σ_i c_il g_il
    w_l = (v_l − u_l) / λ_l  =  (1/n) Σ_i (g_il g_ilᵀ + λ_l I)⁻¹ v_l   (Sherman–Morrison)

i.e. DataInf's approximation of (H_l + λ_l I)⁻¹ v_l with H_l ≈ (1/n) Σ_i g_il g_ilᵀ. Sign: we
return +w, so ⟨g_x, w⟩ > 0 means a step on x lowers the benchmark loss (DataInf's code returns
the negation, positive = harmful).

Two passes over the sample, each an ordinary forward + activation backward:
(1) v_l·g_il and ‖g_il‖² per document and block, without forming g_il (hooks.py);
(2) u_l as the weighted sum Σ_i (c_il/n) g_il, accumulated from the same hooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import torch
from torch import nn

from automixer_core.errors import InfluenceError
from automixer_core.influence.config import InfluenceConfig
from automixer_core.influence.hooks import CaptureEngine
from automixer_core.influence.params import ParamBlock
from automixer_core.influence.runner import run_sequences
from automixer_core.influence.windows import batch_rows, document_rows


@dataclass
class DataInfStats:
    """Diagnostics of the DataInf pass: n (docs used), λ_l per block."""

    n: int
    lambdas: list[float]


def datainf_vectors(
    model: nn.Module,
    blocks: list[ParamBlock],
    v: list[torch.Tensor],
    hessian_docs: Iterable[Sequence[int]],
    config: InfluenceConfig,
    window: int,
) -> tuple[list[torch.Tensor], DataInfStats]:
    """w_l = (v_l − u_l)/λ_l for every block.

    Args:
        model: the checkpoint's model.
        blocks: the selected blocks (L of them).
        v: per block, the query gradients [K, *internal_shape] float32 on the model's device.
        hessian_docs: token ids of corpus documents; the first ``config.hessian_samples`` with
            at least 2 tokens form the sample.
        config: the influence config (damping, batch size, ...).
        window: context window in tokens.

    Returns:
        Per block w [K, *internal_shape], and the statistics of the sample.
    """
    docs = list(islice((list(d) for d in hessian_docs if len(d) >= 2), config.hessian_samples))
    if not docs:
        raise InfluenceError(
            "the DataInf Hessian sample is empty",
            expected="hessian_docs with at least one document of 2+ tokens",
            fix="pass corpus documents as hessian_docs, or use estimator grad_dot",
        )
    n, k = len(docs), int(v[0].shape[0])

    def batches() -> Iterable[list]:
        return batch_rows((document_rows(i, d, window) for i, d in enumerate(docs)), config.batch_size)

    common = dict(autocast=config.autocast, norm_method=config.norm_method, chunk_bytes=config.chunk_bytes)
    with CaptureEngine(model, blocks, queries=v, need_norms=True, **common) as eng:  # type: ignore[arg-type]
        st = run_sequences(eng, batches(), n, padding_side=config.padding_side)
    assert st.scores is not None and st.norms_sq is not None
    vg, gg = st.scores, st.norms_sq  # [n, L, K], [n, L]   float64
    d_l = torch.tensor([b.numel for b in blocks], dtype=torch.float64)
    lam = config.damping * gg.mean(0) / d_l  # [L]
    if not bool((lam > 0).all()):
        zero = [b.name for b, x in zip(blocks, lam.tolist(), strict=True) if not x > 0]
        raise InfluenceError(
            f"the Hessian sample gives zero gradient for blocks {zero}",
            expected="documents whose gradients reach every selected block",
            fix="use more or longer hessian_docs, or other layers",
        )
    coeff = vg / (lam[None, :, None] + gg[:, :, None]) / n  # [n, L, K]
    with CaptureEngine(model, blocks, n_coeffs=k, **common) as eng:  # type: ignore[arg-type]
        run_sequences(eng, batches(), n, padding_side=config.padding_side, coeff_table=coeff.float())
        u = eng.weighted_sums()
    w = [
        ((vl.double() - ul.double()) / lam_l).float()
        for vl, ul, lam_l in zip(v, u, lam.tolist(), strict=True)
    ]
    return w, DataInfStats(n, lam.tolist())
