"""Evaluation settings and result types: :class:`EvalConfig`, :class:`LoglikelihoodResult`,
the token-pair type and the constants shared by the other evaluation modules.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

TokenPair = tuple[list[int], list[int]]
"""(context token ids, continuation token ids)."""

DEFAULT_MAX_LENGTH = 2048
"""Used when neither the model config nor the tokenizer states a maximum length (as lm-eval)."""

_TOKENIZER_INFINITY = 1000000000000000019884624838656


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
