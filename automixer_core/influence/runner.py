"""Drive a :class:`~.hooks.CaptureEngine` over a stream of batches; gather per-sequence results."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from automixer_core.influence.hooks import CaptureEngine
from automixer_core.influence.windows import Row, collate


@dataclass
class SeqStats:
    """Per-sequence results, indexed by sequence number.

    Attributes:
        loss: [n] float64, the sequence's loss (Σ of its weighted NLLs).
        scores: [n, L, K] float64 per-block scores (or [n, 1, K] summed over blocks), or None.
        norms_sq: [n, L] float64 per-block squared gradient norms (or [n, 1]), or None.
    """

    loss: torch.Tensor
    scores: torch.Tensor | None
    norms_sq: torch.Tensor | None


def resolve_window(model: nn.Module, max_length: int | None) -> int:
    """The context window: ``max_length`` or the model's maximum positions."""
    if max_length is not None:
        return max_length
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        val = getattr(cfg, attr, None)
        if isinstance(val, int) and val >= 2:
            return val
    from automixer_core.errors import InfluenceError

    raise InfluenceError(
        f"{type(model).__name__} declares no maximum context length",
        expected="config.max_position_embeddings or n_positions",
        fix="set influence.max_length",
    )


def run_sequences(
    engine: CaptureEngine,
    batches: Iterable[list[Row]],
    n_seq: int,
    *,
    padding_side: str,
    coeff_table: torch.Tensor | None = None,
    keep_blocks: bool = True,
) -> SeqStats:
    """Run every batch through the engine and add segment results into per-sequence arrays.

    Args:
        engine: an entered CaptureEngine.
        batches: row batches (windows.batch_rows); sequence numbers must be < ``n_seq``.
        n_seq: the number of sequences.
        padding_side: "left" or "right".
        coeff_table: [n_seq, L or 1, C] weights of each sequence's per-block gradient in the
            engine's weighted sums.
        keep_blocks: keep per-block scores and norms; otherwise sum them over blocks.
    """
    n_l = len(engine.blocks) if keep_blocks else 1
    loss = torch.zeros(n_seq, dtype=torch.float64)
    scores = torch.zeros(n_seq, n_l, engine.k, dtype=torch.float64) if engine.k else None
    norms = torch.zeros(n_seq, n_l, dtype=torch.float64) if engine.need_norms else None
    for rows in batches:
        batch = collate(rows, padding_side, engine.device)
        seqs = torch.tensor(batch.seg_seq, dtype=torch.long)
        coeffs = None
        if coeff_table is not None:
            c = coeff_table[seqs]
            coeffs = c.expand(len(seqs), len(engine.blocks), c.shape[-1])
        out = engine.run(batch, coeffs)
        loss.index_add_(0, seqs, out.seg_loss.cpu())
        if scores is not None and out.scores is not None:
            s = out.scores.double().cpu()
            scores.index_add_(0, seqs, s if keep_blocks else s.sum(1, keepdim=True))
        if norms is not None and out.norms_sq is not None:
            last = torch.tensor(batch.seg_last)
            nq = out.norms_sq.double().cpu()[last]
            norms.index_add_(0, seqs[last], nq if keep_blocks else nq.sum(1, keepdim=True))
    return SeqStats(loss, scores, norms)
