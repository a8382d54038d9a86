"""The capture engine: one forward and one backward per batch, weights frozen (DESIGN §2).

Every weight of the model is frozen (``requires_grad_(False)``), so the backward computes only
activation gradients. For each *use* of a selected block (params.py) a forward hook keeps the
module's input — activations a [R,T,d_in] for a linear layer, token ids [R,T] for an embedding —
and makes the module's output carry gradient (a fresh leaf when nothing upstream does); a tensor
hook on that output receives δ = ∂loss/∂output [R,T,d_out] during the backward, and the
contraction runs right there, so a and δ are released as the backward proceeds.

The loss of a batch is the *sum* of the rows' weighted NLLs (windows.py), so each row's δ is its
own and per-sequence gradients never mix. With W internal [d_out, d_in] and G_x = Σ_t δ_t a_tᵀ
the gradient of sequence x (summed over its rows), the engine computes per segment (the rows of
one sequence in the batch), per block l:

- scores ⟨G_x, Q_k⟩ for K query blocks Q [K, d_out, d_in]: K = 1 directly as Σ_t δ_t·(Q a_t);
  K ≥ 2 by forming δᵀa [n, d_out, d_in] for a chunk of rows and contracting it with all K;
  embedding: Σ_t Q[token_t]·δ_t, a gather;
- squared norms ‖G_x‖²: Gram form Σ_{t,s}(a_t·a_s)(δ_t·δ_s) or ‖δᵀa‖²; embedding: per distinct
  token Σ_u ‖Σ_{t: token_t = u} δ_t‖²; tied embedding + head:
  ‖G_E + G_H‖² = ‖G_E‖² + ‖G_H‖² + 2 Σ_u G_E[u]·G_H[u] over the sequence's tokens u;
- weighted sums Σ_x c_{x,l,j} G_x for C coefficient columns (DataInf's u, query vectors).

A sequence longer than one batch (more windows than ``batch_size``) has its gradient carried
between batches when norms are needed (one block-sized buffer for that sequence only).

The engine checks itself on every batch: each selected module must have run in the forward (a
weight the model reads directly, ``F.linear(x, m.weight)``, never reaches the hooks) and must
have received its output gradient in the backward; otherwise the batch fails with a
:class:`~automixer_core.errors.ModelError` naming the modules, instead of scores that silently
lack their contribution.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from automixer_core.errors import InfluenceError, ModelError
from automixer_core.influence.params import ParamBlock, Use
from automixer_core.influence.windows import Batch

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class BatchOutput:
    """Per-segment results of one batch (segments as in :class:`~.windows.Batch`).

    Attributes:
        seg_loss: [S] float64, Σ over the segment's rows of the weighted NLL.
        scores: [S, L, K] float32 per-block scores ⟨G_x,l, Q_l,k⟩, or None.
        norms_sq: [S, L] float32 per-block ‖G_x,l‖², NaN for a segment whose sequence continues
            in a later batch (its norm arrives with its last segment), or None.
    """

    seg_loss: torch.Tensor
    scores: torch.Tensor | None
    norms_sq: torch.Tensor | None


@dataclass
class _Ctx:
    batch: Batch
    mask: torch.Tensor  # [R,T] bool
    all_valid: bool  # no padding in the batch
    partial: bool
    coeff_rows: torch.Tensor | None  # [R, L, C]
    scores: torch.Tensor | None  # [S, L, K]
    norms_sq: torch.Tensor | None  # [S, L]
    inputs: dict[int, torch.Tensor] = field(default_factory=dict)
    fired: set[int] = field(default_factory=set)  # uses whose forward hook ran in this batch
    leaves: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    pairs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict
    )
    e_sub: dict[int, torch.Tensor] = field(default_factory=dict)
    h_sub: dict[int, torch.Tensor] = field(default_factory=dict)


#: Tile of per-row gradients δᵀa on CPU: about what a core's L2 cache holds, so a tile is
#: contracted with the queries while still in cache (bench/influence.py --tiles measures it).
CPU_TILE_BYTES = 2 << 20


def default_tile_bytes(device: torch.device, chunk_bytes: int) -> int:
    """The δᵀa tile size: cache-sized on CPU; on an accelerator the whole chunk (one big matmul
    beats many small ones there, and its memory bandwidth makes the temporary cheap)."""
    return min(CPU_TILE_BYTES, chunk_bytes) if device.type == "cpu" else chunk_bytes


def _seg_chunks(batch: Batch, row_bytes: int, budget: int) -> list[tuple[int, int, int, int]]:
    """Chunks (r0, r1, s0, s1) of whole segments with about ``budget`` bytes of per-row state."""
    max_rows = max(1, budget // max(row_bytes, 1))
    out: list[tuple[int, int, int, int]] = []
    s0 = 0
    for s, (a, b) in enumerate(batch.seg_rows):
        r0 = batch.seg_rows[s0][0]
        if s > s0 and b - r0 > max_rows:
            out.append((r0, a, s0, s))
            s0 = s
    out.append((batch.seg_rows[s0][0], batch.seg_rows[-1][1], s0, batch.n_seg))
    return out


def _row_chunks(n_rows: int, row_bytes: int, budget: int) -> Iterator[tuple[int, int]]:
    step = max(1, budget // max(row_bytes, 1))
    for r0 in range(0, n_rows, step):
        yield r0, min(n_rows, r0 + step)


class CaptureEngine:
    """Forward/backward with hooks over a frozen model; see the module docstring.

    Args:
        model: the causal LM (its device is used; put it in place first).
        blocks: the selected blocks (params.select_blocks).
        queries: per block, Q [K, *internal_shape] float32 on the model's device, or None for
            no scores (all blocks must then be None).
        need_norms: compute per-sequence per-block squared gradient norms.
        n_coeffs: C, the number of weighted-sum columns (0 = none).
        autocast: "off", "bf16" or "fp16" for the model's forward.
        norm_method: "auto", "gram" or "materialize".
        chunk_bytes: budget for per-row temporaries such as δᵀa.
        tile_bytes: budget for one tile of δᵀa (a slice of output features of a chunk, see
            :meth:`_materialized`); default :func:`default_tile_bytes`.

    Use as a context manager: entering freezes the weights, sets eval mode and registers the
    hooks; leaving restores ``requires_grad``, the training flag and removes the hooks.
    """

    def __init__(
        self,
        model: nn.Module,
        blocks: list[ParamBlock],
        *,
        queries: list[torch.Tensor] | None = None,
        need_norms: bool = False,
        n_coeffs: int = 0,
        autocast: str = "off",
        norm_method: str = "auto",
        chunk_bytes: int = 256 << 20,
        tile_bytes: int | None = None,
    ) -> None:
        self.model = model
        self.blocks = blocks
        self.need_norms = need_norms
        self.n_coeffs = n_coeffs
        self.autocast = autocast
        self.norm_method = norm_method
        self.chunk_bytes = chunk_bytes
        self.device = next(model.parameters()).device
        self.tile_bytes = (
            tile_bytes if tile_bytes is not None else default_tile_bytes(self.device, chunk_bytes)
        )
        self.k = 0 if queries is None else int(queries[0].shape[0])
        self.q_lin: list[torch.Tensor | None] = []
        self.q_gather: list[torch.Tensor | None] = []
        for i, blk in enumerate(blocks):
            q = None if queries is None else queries[i]
            if q is not None and tuple(q.shape) != (self.k, *blk.internal_shape):
                raise InfluenceError(
                    f"query block {blk.name} has shape {tuple(q.shape)}",
                    expected=f"{(self.k, *blk.internal_shape)}",
                )
            has_emb = any(u.kind == "embedding" for u in blk.uses)
            self.q_lin.append(None if q is None else q.flatten(1))  # [K, o*i]
            self.q_gather.append(
                None if q is None or not has_emb else q.permute(1, 0, 2).contiguous()
            )  # [V,K,d]
        self.uses: list[tuple[Use, int]] = [(u, li) for li, b in enumerate(blocks) for u in b.uses]
        self.tied = [len(b.uses) == 2 for b in blocks]
        self.wsum: list[torch.Tensor] | None = (
            [torch.zeros(n_coeffs, *b.internal_shape, device=self.device) for b in blocks]
            if n_coeffs
            else None
        )
        self._carry: list[torch.Tensor] | None = None
        self._ctx: _Ctx | None = None
        self._ws: torch.Tensor | None = None
        self._handles: list[Any] = []
        self._saved: list[tuple[nn.Parameter, bool]] = []
        self._was_training = False

    # ----------------------------------------------------------------- context management
    def __enter__(self) -> CaptureEngine:
        self._saved = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self._saved:
            p.requires_grad_(False)
        self._was_training = self.model.training
        self.model.eval()
        for key, (use, _) in enumerate(self.uses):
            self._handles.append(use.module.register_forward_hook(partial(self._fwd, key), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._ws = None
        for p, flag in self._saved:
            p.requires_grad_(flag)
        self.model.train(self._was_training)
        self._ctx = None

    # ----------------------------------------------------------------- one batch
    def run(self, batch: Batch, coeffs: torch.Tensor | None = None) -> BatchOutput:
        """Forward + backward over one batch.

        Args:
            batch: the padded rows.
            coeffs: [S, L, C] weights of each segment's per-block gradient in the weighted sums
                (required when the engine has ``n_coeffs > 0``).
        """
        if not self._handles:
            raise RuntimeError("CaptureEngine.run outside its context manager")
        if (coeffs is None) != (self.n_coeffs == 0):
            raise ValueError("coeffs must be given exactly when n_coeffs > 0")
        s, n_l = batch.n_seg, len(self.blocks)
        partial_batch = not all(batch.seg_complete)
        if partial_batch and s != 1:
            raise InfluenceError(
                "a batch mixes a partial sequence with others", expected="batches from windows.batch_rows"
            )
        if partial_batch and self.need_norms and batch.seg_first[0]:
            self._carry = [torch.zeros(b.internal_shape, device=self.device) for b in self.blocks]
        ctx = _Ctx(
            batch=batch,
            mask=batch.attention_mask.bool(),
            all_valid=bool(batch.attention_mask.all()),
            partial=partial_batch,
            coeff_rows=None if coeffs is None else coeffs.to(self.device, torch.float32)[batch.row_seg],
            scores=torch.zeros(s, n_l, self.k, device=self.device) if self.k else None,
            norms_sq=torch.zeros(s, n_l, device=self.device) if self.need_norms else None,
        )
        self._ctx = ctx
        try:
            ac = (
                torch.autocast(self.device.type, dtype=_AUTOCAST[self.autocast])
                if self.autocast != "off"
                else contextlib.nullcontext()
            )
            # without padding the all-ones mask is the default: leave it out so attention keeps its
            # causal fast path (position ids are always explicit: some models broadcast their own)
            extra = {} if ctx.all_valid else {"attention_mask": batch.attention_mask}
            with torch.enable_grad():  # also under a caller's no_grad()
                with ac:
                    out = self.model(
                        input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False, **extra
                    )
                self._check_all_ran(ctx)
                logits = out.logits if hasattr(out, "logits") else out[0]
                nll = F.cross_entropy(
                    logits.flatten(0, 1).float(), batch.targets.flatten(), reduction="none", ignore_index=-100
                ).view(batch.targets.shape)
                weighted = nll * batch.target_weights
                loss = weighted.sum()
                if ctx.leaves and loss.requires_grad:  # else no selected output reaches the loss: below
                    grads = torch.autograd.grad(loss, [t for _, t in ctx.leaves], allow_unused=True)
                    for (key, _), g in zip(ctx.leaves, grads, strict=True):
                        if g is not None:
                            self._bwd(key, g)
                self._check_all_contributed(ctx)
            seg_loss = torch.zeros(s, dtype=torch.float64, device=self.device).index_add_(
                0, batch.row_seg, weighted.detach().double().sum(1)
            )
            self._finalize(ctx)
        finally:
            self._ctx = None
        return BatchOutput(seg_loss, ctx.scores, ctx.norms_sq)

    # ----------------------------------------------------------------- self-checks
    def _names(self, keys: list[int]) -> str:
        return ", ".join(dict.fromkeys(repr(self.uses[k][0].module_name) for k in keys))

    def _check_all_ran(self, ctx: _Ctx) -> None:
        """Every selected module must have been called in the forward pass just run.

        A module whose weight the model reads directly (``F.linear(x, self.proj.weight)``) never
        runs its hooks: its share of every document's gradient would be silently missing.
        """
        missing = [k for k in range(len(self.uses)) if k not in ctx.fired]
        if missing:
            # short names of the selected modules that did run, as a concrete alternative (e.g. Mamba's
            # dt_proj is read directly, its in_proj/x_proj/out_proj are called)
            ran = dict.fromkeys(self.uses[k][0].module_name.rsplit(".", 1)[-1] for k in sorted(ctx.fired))
            called = f"modules such as {'/'.join(list(ran)[:6])}, which ran, or " if ran else ""
            raise ModelError(
                f"selected module(s) {self._names(missing)} of {type(self.model).__name__} did not run in "
                "the forward pass, so their contribution to every gradient would be silently missing",
                expected="each selected module to be called as a module (module(x)) in the forward; a weight "
                "read directly (F.linear(x, module.weight)) bypasses the hooks that capture its activations",
                fix="select other layers (config influence.layers): patterns that leave these modules out and "
                f"match only layers the model calls ({called}embed_head); or make the model call these modules",
            )

    def _check_all_contributed(self, ctx: _Ctx) -> None:
        """Every selected module that ran must have received its output gradient in the backward."""
        stuck = sorted(ctx.inputs)
        if stuck:
            raise ModelError(
                f"selected module(s) {self._names(stuck)} of {type(self.model).__name__} ran but their output "
                "does not reach the loss, so no output gradient arrived and their contribution is missing",
                expected="each selected module's output to feed the logits (not discarded or detached)",
                fix="select other layers (config influence.layers)",
            )

    def _workspace(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """A reused float32 buffer for per-row δᵀa chunks [n, d_out, d_in].

        Reusing one buffer avoids re-faulting fresh pages for every chunk on CPU, where large
        temporaries come straight from mmap; the contents are overwritten by each bmm.
        """
        n = shape[0] * shape[1] * shape[2]
        if self._ws is None or self._ws.numel() < n:
            self._ws = torch.empty(n, device=self.device)
        return self._ws[:n].view(shape)

    # ----------------------------------------------------------------- hooks
    def _fwd(
        self, key: int, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        use, li = self.uses[key]
        if key in ctx.inputs:
            raise ModelError(
                f"module {use.module_name!r} ran twice in one forward pass",
                expected="each selected module to run once per forward",
                fix="select other layers (config influence.layers)",
            )
        x = args[0] if args else next(iter(kwargs.values()))
        if not isinstance(output, torch.Tensor):
            raise ModelError(
                f"module {use.module_name!r} returned {type(output).__name__}", expected="a tensor"
            )
        if not isinstance(x, torch.Tensor) or tuple(x.shape[:2]) != tuple(ctx.mask.shape):
            raise ModelError(
                f"module {use.module_name!r} got an input of shape {tuple(getattr(x, 'shape', ()))}",
                expected=f"[rows, tokens, ...] = {tuple(ctx.mask.shape)} (one gradient per row)",
                fix="select other layers (config influence.layers)",
            )
        ctx.inputs[key] = x.detach()
        ctx.fired.add(key)
        if use.kind == "embedding" and self.need_norms and not ctx.partial:
            self._make_pairs(ctx, li, use, x)
        if output.requires_grad:
            output.register_hook(partial(self._bwd, key))
        else:
            output.requires_grad_(True)
            ctx.leaves.append((key, output))

    def _bwd(self, key: int, grad: torch.Tensor) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        use, li = self.uses[key]
        x = ctx.inputs.pop(key)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            m = ctx.mask.unsqueeze(-1)
            d = grad.float() if ctx.all_valid else torch.where(m, grad.float(), 0.0)
            if use.kind == "linear":
                a = x.float() if ctx.all_valid else torch.where(m, x.float(), 0.0)
                self._linear(ctx, li, a, d)
            else:
                self._embedding(ctx, li, use, x, d)

    # ----------------------------------------------------------------- contractions
    def _norm_mode(self, t: int, o: int, i: int, have_g: bool) -> str | None:
        if not self.need_norms:
            return None
        if self.norm_method != "auto":
            return self.norm_method
        return "materialize" if have_g or t * (o + i) >= o * i else "gram"

    def _linear(self, ctx: _Ctx, li: int, a: torch.Tensor, d: torch.Tensor) -> None:
        """a [R,T,i], d [R,T,o] (pads zeroed) → scores, norms, weighted sums of block li."""
        batch = ctx.batch
        r, t, i = a.shape
        o = d.shape[-1]
        q = self.q_lin[li]
        crow = None if ctx.coeff_rows is None else ctx.coeff_rows[:, li]  # [R, C]
        max_seg_rows = max(b - a_ for a_, b in batch.seg_rows)
        norm_mode = (
            None
            if ctx.partial
            else self._norm_mode(t * max_seg_rows, o, i, self.k >= 2 or self.n_coeffs >= 2)
        )
        need_g = self.k >= 2 or norm_mode == "materialize" or self.n_coeffs >= 2
        row_scores = torch.zeros(r, self.k, device=a.device) if q is not None else None
        if need_g:
            self._materialized(ctx, li, a, d, row_scores, norm_mode == "materialize", crow)
        elif q is not None and row_scores is not None:
            # K == 1: Σ_t δ_t·(Q a_t) = Σ_t (δ_t Q)·a_t; same flops, the smaller temporary wins
            q0 = q.view(o, i)
            if i <= o:
                for r0, r1 in _row_chunks(r, t * i * 4, self.chunk_bytes):
                    row_scores[r0:r1, 0] = (torch.matmul(d[r0:r1], q0) * a[r0:r1]).sum((1, 2))
            else:
                for r0, r1 in _row_chunks(r, t * o * 4, self.chunk_bytes):
                    row_scores[r0:r1, 0] = (torch.matmul(a[r0:r1], q0.T) * d[r0:r1]).sum((1, 2))
        if norm_mode == "gram" and ctx.norms_sq is not None:
            ctx.norms_sq[:, li] += self._gram_norms(batch, a, d)
        if self.wsum is not None and crow is not None and self.n_coeffs == 1:
            self.wsum[li][0] += (d * crow[:, None, :]).flatten(0, 1).T @ a.flatten(0, 1)
        if row_scores is not None and ctx.scores is not None:
            ctx.scores[:, li] += torch.zeros_like(ctx.scores[:, li]).index_add_(0, batch.row_seg, row_scores)
        if ctx.partial and self._carry is not None:
            self._carry[li] += d.flatten(0, 1).T @ a.flatten(0, 1)
        if self.tied[li] and norm_mode is not None:
            self._head_sub(ctx, li, a, d)

    def _materialized(
        self,
        ctx: _Ctx,
        li: int,
        a: torch.Tensor,
        d: torch.Tensor,
        row_scores: torch.Tensor | None,
        norms: bool,
        crow: torch.Tensor | None,
    ) -> None:
        """Per-row gradients δᵀa [n, o, i], formed one tile of output features at a time.

        A chunk of whole segments (n rows) is split into tiles of ``to`` output features so that
        one tile of δᵀa, [n, to, i], stays within ``tile_bytes`` (cache-sized on CPU); each tile
        is contracted at once with the matching slice of all K query blocks (one matmul
        [n, to·i] @ [to·i, K]), squared for the norms and weighted for the sums, so every
        query element is read once per chunk and no model-sized temporary leaves the cache.
        Every result is a sum over output features, hence exact under any tiling.
        """
        batch = ctx.batch
        i = a.shape[-1]
        o = d.shape[-1]
        q = self.q_lin[li]
        q3 = None if q is None else q.view(self.k, o, i)
        w = self.wsum[li] if self.wsum is not None and crow is not None and self.n_coeffs >= 2 else None
        for r0, r1, s0, s1 in _seg_chunks(batch, o * i * 4, self.chunk_bytes):
            n = r1 - r0
            to = max(1, min(o, self.tile_bytes // max(n * i * 4, 1)))
            d_t = d[r0:r1].transpose(1, 2)  # [n, o, T]
            merge = n != s1 - s0  # several rows of one segment: sum them before squaring
            for o0 in range(0, o, to):
                o1 = min(o, o0 + to)
                g = torch.bmm(d_t[:, o0:o1], a[r0:r1], out=self._workspace((n, o1 - o0, i)))
                if row_scores is not None and q3 is not None:
                    # [K, to·i] @ [to·i, n]: this operand order runs ~1.4× faster on CPU than [n,·]@[·,K]
                    row_scores[r0:r1] += (q3[:, o0:o1].reshape(self.k, -1) @ g.flatten(1).T).T
                if norms and ctx.norms_sq is not None:
                    if merge:
                        g_seg = torch.zeros(s1 - s0, o1 - o0, i, device=a.device)
                        g_seg.index_add_(0, batch.row_seg[r0:r1] - s0, g)
                    else:
                        g_seg = g
                    ctx.norms_sq[s0:s1, li] += g_seg.square().sum((1, 2))
                if w is not None and crow is not None:
                    w[:, o0:o1] += torch.einsum("nc,noi->coi", crow[r0:r1], g)

    def _gram_norms(self, batch: Batch, a: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """[S] Σ_{t,s} (a_t·a_s)(δ_t·δ_s) over each segment's tokens (never forms δᵀa)."""
        out = torch.zeros(batch.n_seg, device=a.device)
        t = a.shape[1]
        for r0, r1, s0, s1 in _seg_chunks(batch, 2 * t * t * 4, self.chunk_bytes):
            if r1 - r0 == s1 - s0:
                ka = torch.bmm(a[r0:r1], a[r0:r1].transpose(1, 2))
                kd = torch.bmm(d[r0:r1], d[r0:r1].transpose(1, 2))
                out[s0:s1] = (ka * kd).sum((1, 2))
            else:
                for s in range(s0, s1):
                    q0, q1 = batch.seg_rows[s]
                    aa, dd = a[q0:q1].flatten(0, 1), d[q0:q1].flatten(0, 1)
                    out[s] = ((aa @ aa.T) * (dd @ dd.T)).sum()
        return out

    def _make_pairs(self, ctx: _Ctx, li: int, use: Use, tok: torch.Tensor) -> None:
        """Distinct (segment, token) pairs of an embedding's input, for norms by token."""
        valid = self._valid(ctx, use, tok)
        v = int(self.blocks[li].internal_shape[0])
        keys = (ctx.batch.row_seg[:, None] * v + tok)[valid]
        uniq, inv = torch.unique(keys, return_inverse=True)
        ctx.pairs[li] = (valid, inv, uniq // v, uniq % v)

    @staticmethod
    def _valid(ctx: _Ctx, use: Use, tok: torch.Tensor) -> torch.Tensor:
        valid = ctx.mask
        if use.padding_idx is not None:
            valid = valid & (tok != use.padding_idx)
        return valid

    def _embedding(self, ctx: _Ctx, li: int, use: Use, tok: torch.Tensor, d: torch.Tensor) -> None:
        """tok [R,T], d [R,T,dim] → scores (gather), norms (per distinct token), weighted sums."""
        batch = ctx.batch
        r, t, dim = d.shape
        valid = self._valid(ctx, use, tok)
        d = torch.where(valid.unsqueeze(-1), d, 0.0)
        qg = self.q_gather[li]
        if qg is not None and ctx.scores is not None:
            row_scores = torch.zeros(r, self.k, device=d.device)
            # gathered query rows [n·T, K, dim] @ δ [n·T, dim, 1], in cache-sized chunks of rows
            for r0, r1 in _row_chunks(r, t * self.k * dim * 4, self.tile_bytes):
                n = r1 - r0
                per_tok = torch.bmm(qg[tok[r0:r1]].flatten(0, 1), d[r0:r1].reshape(n * t, dim, 1))
                row_scores[r0:r1] = per_tok.view(n, t, self.k).sum(1)
            ctx.scores[:, li] += torch.zeros_like(ctx.scores[:, li]).index_add_(0, batch.row_seg, row_scores)
        dv, tv = d[valid], tok[valid]  # [N, dim], [N]
        if ctx.norms_sq is not None and not ctx.partial:
            _, inv, pseg, _ = ctx.pairs[li]
            e_sub = torch.zeros(int(pseg.shape[0]), dim, device=d.device).index_add_(0, inv, dv)
            ctx.e_sub[li] = e_sub
            ctx.norms_sq[:, li] += torch.zeros(batch.n_seg, device=d.device).index_add_(
                0, pseg, e_sub.square().sum(1)
            )
        if ctx.partial and self._carry is not None:
            self._carry[li].index_add_(0, tv, dv)
        if self.wsum is not None and ctx.coeff_rows is not None:
            cpos = ctx.coeff_rows[:, li][:, None, :].expand(r, t, self.n_coeffs)[valid]  # [N, C]
            self.wsum[li].index_add_(1, tv, (cpos[:, :, None] * dv[:, None, :]).transpose(0, 1))

    def _head_sub(self, ctx: _Ctx, li: int, a: torch.Tensor, d: torch.Tensor) -> None:
        """G_H restricted to the rows (tokens) each segment's embedding gradient touches: [P, dim]."""
        batch = ctx.batch
        if li not in ctx.pairs:
            return
        _, _, pseg, ptok = ctx.pairs[li]
        h_sub = torch.zeros(int(pseg.shape[0]), a.shape[-1], device=a.device)
        bounds = torch.searchsorted(pseg, torch.arange(batch.n_seg + 1, device=pseg.device)).tolist()
        for s, (r0, r1) in enumerate(batch.seg_rows):
            p0, p1 = bounds[s], bounds[s + 1]
            if p1 > p0:
                ds = d[r0:r1].flatten(0, 1)[:, ptok[p0:p1]]  # [N, U]
                h_sub[p0:p1] = ds.T @ a[r0:r1].flatten(0, 1)
        ctx.h_sub[li] = h_sub

    def _finalize(self, ctx: _Ctx) -> None:
        if ctx.norms_sq is None:
            return
        if ctx.partial:
            if ctx.batch.seg_last[0] and self._carry is not None:
                ctx.norms_sq[0] = torch.stack([c.square().sum() for c in self._carry])
                self._carry = None
            else:
                ctx.norms_sq.fill_(float("nan"))
            return
        for li in ctx.e_sub.keys() & ctx.h_sub.keys():
            _, _, pseg, _ = ctx.pairs[li]
            cross = (ctx.e_sub[li] * ctx.h_sub[li]).sum(1)
            ctx.norms_sq[:, li] += 2 * torch.zeros(ctx.batch.n_seg, device=cross.device).index_add_(
                0, pseg, cross
            )

    # ----------------------------------------------------------------- results
    def weighted_sums(self) -> list[torch.Tensor]:
        """Per block, Σ_x c_{x,l,:} G_x,l accumulated over all batches: [C, *internal_shape]."""
        if self.wsum is None:
            raise RuntimeError("engine built without weighted sums (n_coeffs=0)")
        return self.wsum
