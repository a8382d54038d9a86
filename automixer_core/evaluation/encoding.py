"""Tokenization of (context, continuation) pairs by lm-eval's HFLM rules, and the model's
context length as lm-eval reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from automixer_core.benchmarks.instances import MultipleChoiceInstance
from automixer_core.errors import ModelError
from automixer_core.evaluation.config import _TOKENIZER_INFINITY, DEFAULT_MAX_LENGTH, TokenPair


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
