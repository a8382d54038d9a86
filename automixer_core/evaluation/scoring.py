"""Scoring: forward passes over packed rows, the once-per-model packing probe, and the
log-likelihood of token-level, text and per-question requests.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from automixer_core.benchmarks.instances import MultipleChoiceInstance
from automixer_core.evaluation.config import EvalConfig, LoglikelihoodResult, TokenPair
from automixer_core.evaluation.encoding import encode_pairs, resolve_max_length
from automixer_core.evaluation.packing import (
    _accepts_logits_to_keep,
    _batches,
    _model_device,
    _pack,
    _Row,
    _sliding_window,
    _supports_custom_mask,
)

_PACKING_VERIFIED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _packing_verified(model: Any, device: torch.device, keep_logits: bool) -> bool:
    """Once per model: do packed rows give the per-request numbers? (False: use per_request.)

    Guards against architectures whose attention ignores or rewrites a custom mask (position
    biases built from a 2D mask, for instance). Two tiny forward passes, cached per model.
    """
    if model in _PACKING_VERIFIED:
        return _PACKING_VERIFIED[model]
    vocab = int(model.get_input_embeddings().num_embeddings)
    window = _sliding_window(model)
    n_base = 12 if window is None else max(2, min(12, window - 4))  # stay inside a sliding window
    base = [(7 * i + 3) % vocab for i in range(n_base)]
    conts = [[(11 * i + 5) % vocab for i in range(k)] for k in (3, 2, 4)]
    pairs = [(base, c) for c in conts] + [(base[:1] + conts[0][:1], conts[1])]
    packed: list[LoglikelihoodResult | None] = [None] * len(pairs)
    plain: list[LoglikelihoodResult | None] = [None] * len(pairs)
    ok = True
    try:
        rows = [_pack(pairs[:3], [0, 1, 2], 64), _pack(pairs[3:], [3], 64)]
        _run_batch(
            model,
            rows,
            device,
            custom_mask=True,
            keep_logits=keep_logits,
            autocast_dtype=None,
            results=packed,
        )
        singles = [_pack([p], [i], 64) for i, p in enumerate(pairs)]
        _run_batch(
            model,
            singles,
            device,
            custom_mask=False,
            keep_logits=keep_logits,
            autocast_dtype=None,
            results=plain,
        )
        half = next(model.parameters()).dtype in (torch.float16, torch.bfloat16)
        tol = 5e-2 if half else 1e-4
        for a, b in zip(packed, plain, strict=True):
            ok = (
                ok
                and a is not None
                and b is not None
                and abs(a.logprob - b.logprob) <= tol * max(1.0, abs(b.logprob))
            )
    except Exception:
        ok = False
    _PACKING_VERIFIED[model] = ok
    return ok


@dataclass
class ScoreStats:
    """Work done by one scoring call.

    Attributes:
        requests: (context, continuation) requests scored.
        request_tokens: Σ over requests of the tokens lm-eval would feed (context + continuation
            minus one, after truncation); the basis of tokens/s comparisons.
        forward_tokens: non-padding tokens actually fed to the model (after prefix sharing).
        padded_tokens: batch × length summed over forward passes (padding included).
        truncated: requests longer than the model's length, cut from the left (lm-eval warns).
        forwards: forward passes.
        seconds: wall time of the scoring (tokenization excluded).
        strategy: the strategy that ran (``per_request`` when packing was not possible).
    """

    requests: int = 0
    request_tokens: int = 0
    forward_tokens: int = 0
    padded_tokens: int = 0
    truncated: int = 0
    forwards: int = 0
    seconds: float = 0.0
    strategy: str = ""


@torch.inference_mode()
def _run_batch(
    model: Any,
    batch: list[_Row],
    device: torch.device,
    *,
    custom_mask: bool,
    keep_logits: bool,
    autocast_dtype: torch.dtype | None,
    results: list[LoglikelihoodResult | None],
) -> int:
    """One forward pass over packed rows; writes the results of its requests. Returns its padded size.

    Shapes: input_ids, position_ids [B, T]; attention mask [B, 1, T, T] (custom) or [B, T];
    logits [B, K, V] at the K kept positions; scored tokens flattened to [N].
    """
    bsz = len(batch)
    width = max(len(r.tokens) for r in batch)
    ids = torch.zeros(bsz, width, dtype=torch.long)
    pos = torch.zeros(bsz, width, dtype=torch.long)
    seg = torch.full((bsz, width), -1, dtype=torch.long)
    for b, r in enumerate(batch):
        n = len(r.tokens)
        ids[b, :n] = torch.tensor(r.tokens)
        pos[b, :n] = torch.tensor(r.positions)
        seg[b, :n] = torch.tensor(r.segments)

    kwargs: dict[str, Any] = {}
    if custom_mask:
        seg_d = seg.to(device)
        ar = torch.arange(width, device=device)
        causal = ar[None, :, None] >= ar[None, None, :]  # [1, T(q), T(k)]
        seg_q, seg_k = seg_d[:, :, None], seg_d[:, None, :]
        allowed = causal & (seg_k >= 0) & ((seg_k == 0) | (seg_k == seg_q))
        allowed |= torch.eye(width, dtype=torch.bool, device=device)[None]  # padding attends to itself
        mask = allowed[:, None]  # [B, 1, T, T]
        impl = getattr(model.config, "_attn_implementation", None)
        if impl != "sdpa":  # eager attention adds the mask to the scores
            dtype = next(model.parameters()).dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(
                ~mask, torch.finfo(dtype).min
            )
        kwargs["attention_mask"] = mask
        kwargs["position_ids"] = pos.to(device)
    else:
        kwargs["attention_mask"] = (seg >= 0).long().to(device)

    # flattened scored tokens: (row, position, target, request slot)
    f_row: list[int] = []
    f_pos: list[int] = []
    f_tgt: list[int] = []
    f_req: list[int] = []
    slots: list[int] = []
    for b, r in enumerate(batch):
        for rid, at, tg in zip(r.request_ids, r.score_at, r.targets, strict=True):
            slot = len(slots)
            slots.append(rid)
            f_row += [b] * len(at)
            f_pos += at
            f_tgt += tg
            f_req += [slot] * len(at)
    pos_t = torch.tensor(f_pos, dtype=torch.long)
    if keep_logits:
        kept = torch.unique(pos_t)  # sorted
        lookup = torch.full((width,), -1, dtype=torch.long)
        lookup[kept] = torch.arange(len(kept))
        kwargs["logits_to_keep"] = kept.to(device)
        col = lookup[pos_t]
    else:
        col = pos_t

    with torch.autocast(
        device_type=device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
    ):
        logits = model(input_ids=ids.to(device), use_cache=False, **kwargs).logits  # [B, K, V]
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()  # half-precision logits: normalise in float32
    # log p(target) = logit[target] - logsumexp(logits); greedy = first argmax is the target (as
    # lm-eval's argmax). Reduced over V once per kept position; the [N, V] slab is never copied.
    lse = torch.logsumexp(logits, dim=-1)  # [B, K]
    top = logits.argmax(dim=-1)  # [B, K]
    row_t = torch.tensor(f_row, device=device)
    col_t = col.to(device)
    tgt = torch.tensor(f_tgt, dtype=torch.long, device=device)
    tok_lp = logits[row_t, col_t, tgt] - lse[row_t, col_t]  # [N]
    miss = (top[row_t, col_t] != tgt).to(torch.float32)  # [N]
    req = torch.tensor(f_req, dtype=torch.long, device=device)
    sums = torch.zeros(len(slots), dtype=tok_lp.dtype, device=device).index_add_(0, req, tok_lp)
    misses = torch.zeros(len(slots), dtype=torch.float32, device=device).index_add_(0, req, miss)
    for slot, (s, m) in enumerate(zip(sums.tolist(), misses.tolist(), strict=True)):
        results[slots[slot]] = LoglikelihoodResult(float(s), m == 0.0)
    return bsz * width


def loglikelihood_tokens(
    model: Any,
    groups: Sequence[Sequence[TokenPair]],
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    max_length: int | None = None,
    dtype: str = "float32",
    strategy: str = "shared_prefix",
    stats: ScoreStats | None = None,
) -> list[list[LoglikelihoodResult]]:
    """Log-likelihood of token-level requests, grouped by question.

    Args:
        model: a Hugging Face causal LM (``model(input_ids, ...).logits``), put in eval mode.
        groups: per question, its (context_ids, continuation_ids) requests; requests of one
            group share their common token prefix in one packed row (``shared_prefix``).
        batch_size: as lm-eval's: a forward pass holds at most the tokens of ``batch_size``
            requests padded to the longest (a question is never split across passes).
        device: where to run (``None``: where the model is; the model is moved if needed).
        max_length: context length; longer requests are truncated from the left as lm-eval
            does (``None``: from the model config).
        dtype: autocast dtype name (``float32`` = none).
        strategy: ``shared_prefix`` or ``per_request``.
        stats: filled with the work done, when given.

    Returns:
        Per group, per request: (sum of continuation log-probs, is_greedy).
    """
    start = time.perf_counter()
    dev = _model_device(model) if device in (None, "auto") else torch.device(device)
    if _model_device(model) != dev:
        model.to(dev)
    model.eval()
    length = max_length or resolve_max_length(model)
    if strategy not in ("shared_prefix", "per_request"):
        raise ValueError(f"unknown strategy {strategy!r}; use 'shared_prefix' or 'per_request'")
    autocast_dtype = None if dtype == "float32" else _DTYPES[dtype]
    keep = _accepts_logits_to_keep(model)
    custom_mask = strategy == "shared_prefix" and _supports_custom_mask(model)
    window = _sliding_window(model)
    if custom_mask and window is not None:
        # a packed row's mask is full causal: fine while no request is longer than the window
        custom_mask = all(min(len(c) + len(t), length + 1) - 1 <= window for g in groups for c, t in g)
    custom_mask = custom_mask and _packing_verified(model, dev, keep)

    flat: list[TokenPair] = []
    rows: list[_Row] = []
    offsets: list[int] = []
    for group in groups:
        offsets.append(len(flat))
        ids = list(range(len(flat), len(flat) + len(group)))
        flat += group
        if custom_mask:
            rows.append(_pack(group, ids, length))
        else:
            rows += [_pack([pair], [rid], length) for pair, rid in zip(group, ids, strict=True)]
    results: list[LoglikelihoodResult | None] = [None] * len(flat)
    st = stats if stats is not None else ScoreStats()
    for batch in _batches(rows, batch_size):
        st.padded_tokens += _run_batch(
            model,
            batch,
            dev,
            custom_mask=custom_mask,
            keep_logits=keep,
            autocast_dtype=autocast_dtype,
            results=results,
        )
        st.forwards += 1
        st.forward_tokens += sum(len(r.tokens) for r in batch)
    st.requests += len(flat)
    st.strategy = "shared_prefix" if custom_mask else "per_request"
    st.request_tokens += sum(min(len(c) + len(t), length + 1) - 1 for c, t in flat)
    st.truncated += sum(len(c) + len(t) > length + 1 for c, t in flat)
    st.seconds += time.perf_counter() - start
    done = _all_scored(results)
    return [done[offsets[gi] : offsets[gi] + len(group)] for gi, group in enumerate(groups)]


def _all_scored(results: Sequence[LoglikelihoodResult | None]) -> list[LoglikelihoodResult]:
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"{len(missing)} requests were not scored (first: {missing[0]}); this is a bug")
    return [r for r in results if r is not None]


def loglikelihood(
    model: Any,
    tokenizer: Any,
    requests: Sequence[tuple[str, str]],
    config: EvalConfig | None = None,
) -> list[LoglikelihoodResult]:
    """(sum logprob, is_greedy) of text (context, continuation) requests, in request order.

    Requests with the same context string are packed together (their context runs once).
    """
    cfg = config or EvalConfig()
    pairs = encode_pairs(tokenizer, requests, cfg.add_bos_token)
    by_ctx: dict[str, list[int]] = {}
    for i, (context, _) in enumerate(requests):
        by_ctx.setdefault(context, []).append(i)
    index = list(by_ctx.values())
    scored = loglikelihood_tokens(
        model,
        [[pairs[i] for i in idx] for idx in index],
        batch_size=cfg.batch_size,
        device=cfg.device,
        max_length=cfg.max_length or resolve_max_length(model, tokenizer),
        dtype=cfg.dtype,
        strategy=cfg.strategy,
    )
    out: list[LoglikelihoodResult | None] = [None] * len(requests)
    for idx, res in zip(index, scored, strict=True):
        for i, r in zip(idx, res, strict=True):
            out[i] = r
    return _all_scored(out)


def score_instances(
    model: Any,
    tokenizer: Any,
    instances: Sequence[MultipleChoiceInstance],
    config: EvalConfig | None = None,
    stats: ScoreStats | None = None,
) -> list[list[LoglikelihoodResult]]:
    """Per question, per choice: (sum logprob, is_greedy) of its (context, continuation) request."""
    cfg = config or EvalConfig()
    pairs = encode_pairs(tokenizer, [req for inst in instances for req in inst.requests()], cfg.add_bos_token)
    groups: list[list[TokenPair]] = []
    k = 0
    for inst in instances:
        groups.append(pairs[k : k + inst.n_choices])
        k += inst.n_choices
    return loglikelihood_tokens(
        model,
        groups,
        batch_size=cfg.batch_size,
        device=cfg.device,
        max_length=cfg.max_length or resolve_max_length(model, tokenizer),
        dtype=cfg.dtype,
        strategy=cfg.strategy,
        stats=stats,
    )
