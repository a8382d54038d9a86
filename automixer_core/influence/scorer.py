"""Score corpus documents against the query vectors of one checkpoint (DESIGN §1.3, §2).

For document x with gradient g_x = ∇_P ℓ(x) (ℓ = mean next-token NLL over all its predictions,
windows.py) and K query vectors w_k: I_k(x) = ⟨g_x, w_k⟩, or ⟨g_x, w_k⟩/‖g_x‖ for ``cosine``.
One forward and one activation backward per batch (hooks.py); memory is bounded by the batch and
the sort buffer; no per-document gradient outlives its batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch
from torch import nn

from automixer_core.errors import InfluenceError
from automixer_core.influence.config import InfluenceConfig
from automixer_core.influence.hooks import CaptureEngine
from automixer_core.influence.params import blocks_parameter_fraction, select_blocks
from automixer_core.influence.queries import QueryVectors
from automixer_core.influence.runner import resolve_window, run_sequences
from automixer_core.influence.windows import batch_rows, document_rows


@dataclass
class ScoreResult:
    """Scores of D documents against K queries.

    Attributes:
        doc_ids: D document ids, in input order.
        query_names: K query (benchmark) names, the columns of ``scores``.
        scores: [D, K] float32 influence I_k(x) (positive = helpful).
        loss: [D] float32 mean next-token NLL ℓ(x) (NaN for documents of fewer than 2 tokens).
        n_tokens: [D] int64 token count of each document.
        grad_norm: [D] float32 ‖∇_P ℓ(x)‖, or None when not computed.
        metadata: provenance strings (estimator, layers, ``parameter_fraction``: the share of the
            model's parameters the layer selection covers, query metadata).
    """

    doc_ids: list[str]
    query_names: list[str]
    scores: np.ndarray
    loss: np.ndarray
    n_tokens: np.ndarray
    grad_norm: np.ndarray | None
    metadata: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.doc_ids)


def _chunks(docs: Iterable[tuple[str, Sequence[int]]], size: int) -> Iterator[list[tuple[str, list[int]]]]:
    it = iter(docs)
    while chunk := [(str(i), list(t)) for i, t in islice(it, size)]:
        yield chunk


def score_documents(
    model: nn.Module,
    docs: Iterable[tuple[str, Sequence[int]]],
    queries: QueryVectors,
    config: InfluenceConfig,
) -> ScoreResult:
    """Score a stream of tokenized documents.

    Args:
        model: the checkpoint's causal LM, on the device to use (the queries' checkpoint).
        docs: (doc_id, token ids) pairs.
        queries: the checkpoint's query vectors (build_query_vectors).
        config: batch size, window, precision, padding; its estimator, layers and adam flag must
            match those the queries were built with.

    Returns:
        The [D, K] scores with per-document loss, token count and (cosine or
        ``compute_grad_norm``) gradient norm.

    Raises:
        InfluenceError: the queries were built with another estimator, layer selection or Adam flag.
        ModelError: a selected module did not run in a batch's forward pass (its weight is read
            directly) or its output did not reach the loss (hooks.py checks every batch).
    """
    if (queries.estimator, queries.layers, queries.adam) != (config.estimator, config.layers, config.adam):
        raise InfluenceError(
            f"query vectors were built with estimator={queries.estimator}, layers={queries.layers}, adam={queries.adam}",
            expected=f"the scoring config's estimator={config.estimator}, layers={config.layers}, adam={config.adam}",
            fix="score with the influence config the query vectors were built with",
        )
    blocks = select_blocks(model, queries.layers)
    device = next(model.parameters()).device
    q = queries.internal(blocks, device)
    window = resolve_window(model, config.max_length)
    need_norms = config.needs_grad_norm
    ids: list[str] = []
    scores: list[np.ndarray] = []
    losses: list[np.ndarray] = []
    ntok: list[np.ndarray] = []
    norms: list[np.ndarray] = []
    with CaptureEngine(
        model,
        blocks,
        queries=q,
        need_norms=need_norms,
        autocast=config.autocast,
        norm_method=config.norm_method,
        chunk_bytes=config.chunk_bytes,
    ) as eng:
        for chunk in _chunks(docs, config.sort_buffer):
            order = sorted(range(len(chunk)), key=lambda i: -len(chunk[i][1]))  # less padding
            groups = (document_rows(i, chunk[i][1], window) for i in order)
            st = run_sequences(
                eng,
                batch_rows(groups, config.batch_size),
                len(chunk),
                padding_side=config.padding_side,
                keep_blocks=False,
            )
            assert st.scores is not None
            s = st.scores[:, 0, :]  # [n, K]
            lengths = np.array([len(t) for _, t in chunk], dtype=np.int64)
            loss = st.loss.numpy().copy()
            loss[lengths < 2] = np.nan
            if need_norms:
                assert st.norms_sq is not None
                gn = st.norms_sq[:, 0].clamp_min(0).sqrt()
                norms.append(gn.numpy().astype(np.float32))
                if config.estimator == "cosine":
                    s = torch.where(gn[:, None] > 0, s / gn[:, None].clamp_min(1e-300), torch.zeros_like(s))
            ids.extend(i for i, _ in chunk)
            scores.append(s.numpy().astype(np.float32))
            losses.append(loss.astype(np.float32))
            ntok.append(lengths)
    k = queries.k
    meta = dict(queries.metadata)
    meta.update(
        estimator=queries.estimator,
        layers=str(queries.layers),
        adam=str(queries.adam),
        parameter_fraction=repr(blocks_parameter_fraction(model, blocks)),
    )
    return ScoreResult(
        doc_ids=ids,
        query_names=list(queries.names),
        scores=np.concatenate(scores) if scores else np.zeros((0, k), np.float32),
        loss=np.concatenate(losses) if losses else np.zeros(0, np.float32),
        n_tokens=np.concatenate(ntok) if ntok else np.zeros(0, np.int64),
        grad_norm=(np.concatenate(norms) if norms else np.zeros(0, np.float32)) if need_norms else None,
        metadata=meta,
    )
