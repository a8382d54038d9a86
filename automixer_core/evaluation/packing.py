"""Packing of a question's requests into one row (shared prefix, then each choice's own
tokens), batching of rows under lm-eval's memory footprint, and the model probes that decide
whether packed rows can run.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from automixer_core.errors import ModelError
from automixer_core.evaluation.config import TokenPair


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
