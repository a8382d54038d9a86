"""Zero-shot multiple-choice evaluation of a causal LM, scored like lm-evaluation-harness.

Numbers match lm-eval's ``HFLM`` (0.4.x): the same tokenization of (context, continuation) pairs
(:func:`encode_pair`), the same left truncation to the model's maximum length, the same
log-likelihood sums and greedy flags, and ``acc``/``acc_norm`` computed the same way.

Speed comes from not recomputing what repeats. The choices of one question share their
context (WinoGrande's two contexts share the sentence up to the blank), so each question becomes
*one packed row*: the longest token prefix common to all its choices, followed by every choice's
remaining tokens. A custom attention mask lets each choice's tokens attend to the shared prefix
and to their own earlier tokens only, and position ids restart after the prefix, so every choice
sees exactly the sequence it would see alone. Rows are sorted by length and batched; logits are
computed only at the positions that are scored (``logits_to_keep``). The plain lm-eval way (one
row per request) remains available as ``strategy="per_request"``; it is also used, automatically,
for attention backends that take no custom mask (flash attention), for sliding-window models
when a request is longer than the window, and for any model on which a two-pass probe finds
that packed rows do not reproduce the per-request numbers.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from automixer_core.benchmarks.instances import MultipleChoiceInstance
from automixer_core.benchmarks.loading import select_rows
from automixer_core.errors import ModelError

TokenPair = tuple[list[int], list[int]]
"""(context token ids, continuation token ids)."""

DEFAULT_MAX_LENGTH = 2048
"""Used when neither the model config nor the tokenizer states a maximum length (as lm-eval)."""

_TOKENIZER_INFINITY = 1000000000000000019884624838656
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class EvalConfig(BaseModel):
    """How to run an evaluation.

    Attributes:
        batch_size: lm-eval's batch size: a forward pass holds at most as many tokens as
            lm-eval's batch of this many requests (``batch_size`` x the longest request, padding
            included); with ``per_request`` it is exactly that many requests.
        device: ``"auto"`` (where the model is), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: autocast dtype of the forward pass; ``float32`` means no autocast. bf16 is meant
            for CUDA; log-softmax is always taken in float32.
        limit: evaluate a seeded random sample of this many questions (``None``: all).
        seed: seed of that sample.
        strategy: ``shared_prefix`` (one packed row per question, the default) or
            ``per_request`` (one row per request, as lm-eval).
        max_length: model context length; ``None`` reads it from the model config as lm-eval does.
        add_bos_token: as lm-eval's HFLM argument: ``None`` keeps the tokenizer's default.
    """

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        default=16, ge=1, description="requests per forward pass, as lm-eval's batch size"
    )
    device: str = Field(default="auto", description="auto (where the model is), cpu, cuda or cuda:N")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32", description="autocast dtype of the forward pass (float32: none)"
    )
    limit: int | None = Field(
        default=None, ge=1, description="evaluate a seeded sample of this many questions"
    )
    seed: int = Field(default=0, description="seed of that sample")
    strategy: Literal["shared_prefix", "per_request"] = Field(
        default="shared_prefix",
        description="shared_prefix: each question's context once; per_request: as lm-eval",
    )
    max_length: int | None = Field(
        default=None, ge=2, description="model context length (None: from the model config)"
    )
    add_bos_token: bool | None = Field(
        default=None, description="as lm-eval's HFLM argument (None: the tokenizer's default)"
    )


class LoglikelihoodResult(NamedTuple):
    """Score of one (context, continuation) request.

    Attributes:
        logprob: sum over continuation tokens of log p(token | everything before it).
        is_greedy: True when every continuation token is the argmax of its distribution.
    """

    logprob: float
    is_greedy: bool


# ---------------------------------------------------------------------------------------------
# tokenization (lm-eval's HFLM rules)


def _prefix_token_id(tokenizer: Any) -> int:
    """lm-eval's ``prefix_token_id``: BOS if the tokenizer has one, else EOS."""
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    if tokenizer.eos_token_id is None:
        raise ModelError("The tokenizer has neither a BOS nor an EOS token", fix="set tokenizer.eos_token")
    return int(tokenizer.eos_token_id)


def _special_tokens_flag(text: str, bos_text: str, add_bos_token: bool | None) -> bool:
    """``add_special_tokens`` as HFLM.tok_encode decides it for a causal model."""
    if text.startswith(bos_text):
        return False  # the string already starts with BOS: add nothing
    return True if add_bos_token is None else add_bos_token


def _encode_many(tokenizer: Any, texts: Sequence[str], add_bos_token: bool | None) -> dict[str, list[int]]:
    """Encode distinct strings in batches (fast tokenizers run them in parallel)."""
    bos_text = tokenizer.decode(_prefix_token_id(tokenizer))
    by_flag: dict[bool, list[str]] = {True: [], False: []}
    for t in dict.fromkeys(texts):
        by_flag[_special_tokens_flag(t, bos_text, add_bos_token)].append(t)
    out: dict[str, list[int]] = {}
    for flag, group in by_flag.items():
        if group:
            ids = tokenizer(group, add_special_tokens=flag)["input_ids"]
            out.update(zip(group, (list(x) for x in ids), strict=True))
    return out


def encode_pairs(
    tokenizer: Any, pairs: Sequence[tuple[str, str]], add_bos_token: bool | None = None
) -> list[TokenPair]:
    """Tokenize (context, continuation) pairs exactly as lm-eval's HFLM does for a causal LM.

    Trailing whitespace of the context moves to the front of the continuation; the whole string
    and the context are encoded (with the tokenizer's special tokens unless ``add_bos_token`` says
    otherwise, and never when the string already starts with the BOS text), and the continuation
    ids are the whole ids after the context's length. An empty context becomes the prefix token
    (BOS, else EOS) unless the continuation already starts with it.
    """
    prepared: list[tuple[str, str] | None] = []
    texts: list[str] = []
    empty_ctx: list[str] = []
    for context, continuation in pairs:
        if context == "":
            prepared.append(None)
            empty_ctx.append(continuation)
            continue
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        prepared.append((context, continuation))
        texts += [context + continuation, context]
    enc = _encode_many(tokenizer, texts, add_bos_token)
    plain: dict[str, list[int]] = {}
    if empty_ctx:
        ids = tokenizer(list(dict.fromkeys(empty_ctx)), add_special_tokens=False)["input_ids"]
        plain = dict(zip(dict.fromkeys(empty_ctx), (list(x) for x in ids), strict=True))
    prefix = _prefix_token_id(tokenizer) if empty_ctx else -1
    out: list[TokenPair] = []
    for (_, continuation), prep in zip(pairs, prepared, strict=True):
        if prep is None:
            cont = plain[continuation]
            out.append(([prefix], cont) if not cont or cont[0] != prefix else (cont[:1], cont[1:]))
            continue
        ctx_ids = enc[prep[0]]
        whole = enc[prep[0] + prep[1]]
        out.append((ctx_ids, whole[len(ctx_ids) :]))
    return out


def encode_pair(
    tokenizer: Any, context: str, continuation: str, add_bos_token: bool | None = None
) -> TokenPair:
    """Tokenize one (context, continuation) pair as lm-eval's HFLM does (see :func:`encode_pairs`).

    With HFLM's default ``add_bos_token=None`` the tokenizer's own special tokens are used
    (Llama tokenizers prepend BOS, GPT-2 style ones add nothing).

    Returns:
        (context_ids, continuation_ids); ``context_ids + continuation_ids`` is the encoded whole.
    """
    return encode_pairs(tokenizer, [(context, continuation)], add_bos_token)[0]


def encode_instance(
    tokenizer: Any, instance: MultipleChoiceInstance, add_bos_token: bool | None = None
) -> list[TokenPair]:
    """Token pairs of every choice of a question, in choice order."""
    return encode_pairs(tokenizer, instance.requests(), add_bos_token)


def gold_pairs(
    tokenizer: Any, instances: Sequence[MultipleChoiceInstance], add_bos_token: bool | None = None
) -> list[TokenPair]:
    """Per question, the (context_ids, continuation_ids) of its correct choice.

    This is the pair whose NLL is the benchmark loss of the influence engine; it is tokenized
    exactly like the evaluation scores it.
    """
    return encode_pairs(tokenizer, [inst.gold_request() for inst in instances], add_bos_token)


def gold_pair(
    tokenizer: Any, instance: MultipleChoiceInstance, add_bos_token: bool | None = None
) -> TokenPair:
    """(context_ids, continuation_ids) of one question's correct choice."""
    return gold_pairs(tokenizer, [instance], add_bos_token)[0]


def resolve_max_length(model: Any, tokenizer: Any | None = None, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The model's context length as lm-eval reads it.

    Order: ``n_positions``, ``max_position_embeddings``, ``n_ctx`` of the (text) config, then the
    tokenizer's ``model_max_length`` unless it is the "infinite" sentinel, then ``default``.
    """
    config = getattr(model, "config", None)
    cfg = getattr(config, "text_config", None) or config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(cfg, attr, None)
        if value is not None:
            return int(value)
    mml = getattr(tokenizer, "model_max_length", None)
    if mml is not None and mml != _TOKENIZER_INFINITY:
        return int(mml)
    return default


# ---------------------------------------------------------------------------------------------
# packing


@dataclass
class _Row:
    """One packed row: a question's shared prefix then each distinct choice's remaining tokens.

    ``positions`` are the positions each token has in its own (unpacked) sequence; ``segments``
    is 0 on the shared prefix, k+1 on the k-th choice's own tokens. ``score_at[r]`` lists the
    row indices whose logits predict request r's continuation tokens ``targets[r]``.
    """

    tokens: list[int]
    positions: list[int]
    segments: list[int]
    request_ids: list[int]
    score_at: list[list[int]]
    targets: list[list[int]]
    longest_request: int = 0


def _pack(pairs: Sequence[TokenPair], request_ids: Sequence[int], max_length: int) -> _Row:
    """Pack the requests of one question into a row (one request: a plain row)."""
    inps: list[list[int]] = []
    for ctx, cont in pairs:
        if not ctx or not cont:
            raise ValueError("every request needs at least one context and one continuation token")
        if len(cont) > max_length:
            raise ModelError(
                f"A benchmark answer of {len(cont)} tokens is longer than the model's context of {max_length} tokens",
                expected="continuations that fit the context window (lm-eval cannot score them either)",
                fix="evaluate a model with a longer context (max_position_embeddings), or drop that benchmark",
            )
        inps.append((ctx + cont)[-(max_length + 1) :][:-1])
    uniq = list(dict.fromkeys(tuple(x) for x in inps))
    if len(uniq) == 1:
        common = len(uniq[0])
    else:
        common = min(len(u) for u in uniq)
        first = uniq[0]
        for u in uniq[1:]:
            i = 0
            while i < common and u[i] == first[i]:
                i += 1
            common = i
    tokens = list(uniq[0][:common])
    positions = list(range(common))
    segments = [0] * common
    starts: dict[tuple[int, ...], int] = {}
    for k, u in enumerate(uniq):
        starts[u] = len(tokens)
        tokens += u[common:]
        positions += range(common, len(u))
        segments += [k + 1] * (len(u) - common)
    score_at: list[list[int]] = []
    targets: list[list[int]] = []
    for inp, (_, cont) in zip(inps, pairs, strict=True):
        start = starts[tuple(inp)]
        n, length = len(cont), len(inp)
        score_at.append([p if p < common else start + p - common for p in range(length - n, length)])
        targets.append(list(cont))
    return _Row(tokens, positions, segments, list(request_ids), score_at, targets, max(len(x) for x in inps))


def _supports_custom_mask(model: Any) -> bool:
    """Eager or SDPA attention in a model whose modeling code takes a ready 4D mask as is."""
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None) or "eager"
    if impl not in ("eager", "sdpa"):
        return False
    module = sys.modules.get(type(model).__module__)
    return module is not None and "create_causal_mask" in vars(module)


def _sliding_window(model: Any) -> int | None:
    window = getattr(getattr(model, "config", None), "sliding_window", None)
    return int(window) if isinstance(window, int) and window > 0 else None


_PACKING_VERIFIED: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


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


def _accepts_logits_to_keep(model: Any) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _model_device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


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


def _batches(rows: list[_Row], batch_size: int) -> list[list[_Row]]:
    """Rows sorted by length (longest first), grouped under lm-eval's footprint for ``batch_size``.

    lm-eval pads ``batch_size`` requests to the longest one, so a batch of it holds
    ``batch_size x longest request`` tokens. A batch here may hold as many tokens (padding
    included) and so as much activation and logit memory, whatever the number of rows; with one
    request per row (``per_request``) this is exactly ``batch_size`` rows.
    """
    order = sorted(rows, key=lambda r: (-len(r.tokens), r.request_ids[0]))
    out: list[list[_Row]] = []
    cur: list[_Row] = []
    width = longest_request = 0
    for row in order:
        req = row.longest_request
        if cur and (len(cur) + 1) * width > batch_size * max(longest_request, req):
            out.append(cur)
            cur = []
        if not cur:
            width, longest_request = len(row.tokens), 0
        cur.append(row)
        longest_request = max(longest_request, req)
    if cur:
        out.append(cur)
    return out


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


# ---------------------------------------------------------------------------------------------
# metrics


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean with the sample standard deviation (ddof=1), as lm-eval; NaN below 2 values."""
    n = len(values)
    if n < 2:
        return float("nan")
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.std(ddof=1) / math.sqrt(n))


@dataclass
class BenchmarkResult:
    """Accuracy of one model on one set of questions.

    Attributes:
        acc: fraction of questions whose highest-log-likelihood choice is the gold one.
        acc_norm: the same with each log-likelihood divided by the choice's length in characters.
        acc_stderr: standard error of ``acc`` (sample std / sqrt(n)).
        acc_norm_stderr: standard error of ``acc_norm``.
        n: number of questions.
        per_example: one row per question: doc_id, gold, pred, pred_norm, correct, correct_norm,
            logprobs (per choice), is_greedy (per choice), choice_lengths.
        stats: work done (requests, tokens, seconds).
    """

    acc: float
    acc_norm: float
    acc_stderr: float
    acc_norm_stderr: float
    n: int
    per_example: pd.DataFrame = field(repr=False)
    stats: ScoreStats = field(default_factory=ScoreStats, repr=False)
    gold_ll: float = float("nan")
    gold_ll_stderr: float = float("nan")

    def metrics(self) -> dict[str, float | int]:
        """The summary numbers as a JSON-ready dict."""
        return {
            "acc": self.acc,
            "acc_stderr": self.acc_stderr,
            "acc_norm": self.acc_norm,
            "acc_norm_stderr": self.acc_norm_stderr,
            "gold_ll": self.gold_ll,
            "gold_ll_stderr": self.gold_ll_stderr,
            "n": self.n,
        }


def gold_loglikelihoods(per_example: pd.DataFrame) -> list[float]:
    """Per question, the gold choice's log-likelihood per character (nats/char): the mean over
    questions is ``gold_ll``, which moves long before accuracy leaves chance."""
    return [
        float(lls[int(g)]) / float(lens[int(g)])
        for g, lls, lens in zip(
            per_example["gold"], per_example["logprobs"], per_example["choice_lengths"], strict=True
        )
    ]


def predictions(logprobs: Sequence[float], choice_lengths: Sequence[int]) -> tuple[int, int]:
    """(pred, pred_norm) as lm-eval takes them: ``np.argmax`` (first index on ties) of the sums and of sum / length."""
    lls = np.asarray(logprobs, dtype=np.float64)
    return int(np.argmax(lls)), int(np.argmax(lls / np.asarray(choice_lengths, dtype=np.float64)))


def summarize(
    instances: Sequence[MultipleChoiceInstance], scores: Sequence[Sequence[LoglikelihoodResult]]
) -> BenchmarkResult:
    """acc, acc_norm, their standard errors and the per-question table from choice scores."""
    records = []
    for inst, res in zip(instances, scores, strict=True):
        lls = [r.logprob for r in res]
        pred, pred_norm = predictions(lls, inst.choice_lengths)
        records.append(
            {
                "doc_id": inst.doc_id,
                "gold": inst.gold,
                "pred": pred,
                "pred_norm": pred_norm,
                "correct": float(pred == inst.gold),
                "correct_norm": float(pred_norm == inst.gold),
                "logprobs": lls,
                "is_greedy": [r.is_greedy for r in res],
                "choice_lengths": list(inst.choice_lengths),
            }
        )
    df = pd.DataFrame.from_records(
        records,
        columns=[
            "doc_id",
            "gold",
            "pred",
            "pred_norm",
            "correct",
            "correct_norm",
            "logprobs",
            "is_greedy",
            "choice_lengths",
        ],
    )
    acc_list = df["correct"].tolist()
    norm_list = df["correct_norm"].tolist()
    gold = gold_loglikelihoods(df)
    n = len(df)
    return BenchmarkResult(
        acc=float(np.mean(acc_list)) if n else float("nan"),
        acc_norm=float(np.mean(norm_list)) if n else float("nan"),
        acc_stderr=mean_stderr(acc_list),
        acc_norm_stderr=mean_stderr(norm_list),
        n=n,
        per_example=df,
        gold_ll=float(np.mean(gold)) if n else float("nan"),
        gold_ll_stderr=mean_stderr(gold),
    )


def evaluate_benchmark(
    model: Any,
    tokenizer: Any,
    instances: Sequence[MultipleChoiceInstance],
    batch_size: int | None = None,
    device: str | None = None,
    config: EvalConfig | None = None,
) -> BenchmarkResult:
    """Zero-shot accuracy of ``model`` on the questions, scored like lm-evaluation-harness.

    ``batch_size`` and ``device`` override the same fields of ``config``. With ``config.limit``
    a seeded random sample of that many questions is evaluated.
    """
    cfg = config or EvalConfig()
    updates: dict[str, Any] = {}
    if batch_size is not None:
        updates["batch_size"] = batch_size
    if device is not None:
        updates["device"] = device
    if updates:
        cfg = cfg.model_copy(update=updates)
    chosen = list(instances)
    if cfg.limit is not None:
        chosen = [chosen[i] for i in select_rows(len(chosen), cfg.limit, cfg.seed, salt="evaluate")]
    stats = ScoreStats()
    scores = score_instances(model, tokenizer, chosen, cfg, stats=stats)
    result = summarize(chosen, scores)
    result.stats = stats
    return result
