"""Plain per-document autograd oracle for the influence engine (float64, one document at a time).

Everything here is deliberately naive: gradients are materialized and flattened, windows are
run unpadded one at a time, and the formulas of DESIGN §1.3 are applied to explicit vectors.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def double_copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).double().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _params(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    named = dict(model.named_parameters())
    return [named[n] for n in names]


def _grad(model: nn.Module, names: Sequence[str], loss: torch.Tensor) -> torch.Tensor:
    ps = _params(model, names)
    gs = torch.autograd.grad(loss, ps, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(gs, ps, strict=True)]
    )


def _nll(model: nn.Module, ids: Sequence[int]) -> torch.Tensor:
    x = torch.tensor([list(ids)])
    logits = model(input_ids=x).logits[0].double()
    return F.cross_entropy(logits[:-1], x[0, 1:], reduction="none")


def doc_loss(model: nn.Module, ids: Sequence[int], window: int) -> torch.Tensor:
    """Mean next-token NLL over all N−1 predictions, windows starting every window−1 tokens."""
    n = len(ids)
    total = torch.zeros((), dtype=torch.float64)
    for s in range(0, n - 1, window - 1):
        total = total + _nll(model, ids[s : s + window]).sum()
    return total / (n - 1)


def doc_grads(
    model: nn.Module, names: Sequence[str], docs: Sequence[Sequence[int]], window: int
) -> torch.Tensor:
    """[D, P] flattened per-document gradients of the selected parameters."""
    for p in _params(model, names):
        p.requires_grad_(True)
    try:
        with torch.enable_grad():
            return torch.stack([_grad(model, names, doc_loss(model, d, window)) for d in docs])
    finally:
        for p in model.parameters():
            p.requires_grad_(False)


def query_grad(
    model: nn.Module,
    names: Sequence[str],
    examples: Sequence[tuple[Sequence[int], Sequence[int]]],
    window: int,
    per_token: bool = False,
) -> torch.Tensor:
    """[P] mean over examples of ∇ Σ_j NLL(continuation_j | context, continuation_<j) (divided by
    the continuation's length with ``per_token``)."""
    for p in _params(model, names):
        p.requires_grad_(True)
    try:
        out = []
        with torch.enable_grad():
            for ctx, cont in examples:
                ids = [*ctx, *cont][-window:]
                loss = _nll(model, ids)[-len(cont) :].sum() / (len(cont) if per_token else 1)
                out.append(_grad(model, names, loss))
        return torch.stack(out).mean(0)
    finally:
        for p in model.parameters():
            p.requires_grad_(False)


def block_slices(model: nn.Module, names: Sequence[str]) -> list[slice]:
    out, o = [], 0
    for p in _params(model, names):
        out.append(slice(o, o + p.numel()))
        o += p.numel()
    return out


def datainf_w(v: torch.Tensor, g: torch.Tensor, slices: list[slice], damping: float = 0.1) -> torch.Tensor:
    """DataInf's w from explicit per-document gradients g [n, P] (Sherman–Morrison, per block)."""
    w = torch.empty_like(v)
    for sl in slices:
        gl, vl = g[:, sl], v[sl]
        sq = gl.square().sum(1)
        lam = damping * sq.mean() / gl.shape[1]
        c = (gl @ vl) / (lam + sq)
        w[sl] = (vl - (c[:, None] * gl).mean(0)) / lam
    return w


def datainf_w_explicit(v: torch.Tensor, g: torch.Tensor, damping: float = 0.1) -> torch.Tensor:
    """(1/n) Σ_i (g_i g_iᵀ + λ I)⁻¹ v with explicit matrices and linalg.solve (one block)."""
    d = g.shape[1]
    lam = damping * g.square().sum(1).mean() / d
    eye = torch.eye(d, dtype=g.dtype)
    return torch.stack([torch.linalg.solve(torch.outer(gi, gi) + lam * eye, v) for gi in g]).mean(0)


def flat(blocks: dict[str, torch.Tensor], names: Sequence[str], k: int) -> torch.Tensor:
    """[P] flattened query vector k in the oracle's parameter order."""
    return torch.cat([blocks[n][k].double().flatten() for n in names])
