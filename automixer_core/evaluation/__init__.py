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

from typing import TYPE_CHECKING

from automixer_core.lazy import lazy_exports

if TYPE_CHECKING:
    from automixer_core.evaluation.config import (
        DEFAULT_MAX_LENGTH,
        EvalConfig,
        LoglikelihoodResult,
        TokenPair,
    )
    from automixer_core.evaluation.encoding import (
        encode_instance,
        encode_pair,
        encode_pairs,
        gold_pair,
        gold_pairs,
        resolve_max_length,
    )
    from automixer_core.evaluation.metrics import (
        BenchmarkResult,
        evaluate_benchmark,
        gold_loglikelihoods,
        mean_stderr,
        predictions,
        summarize,
    )
    from automixer_core.evaluation.scoring import (
        ScoreStats,
        loglikelihood,
        loglikelihood_tokens,
        score_instances,
    )

if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would make every name Any
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "automixer_core.evaluation.config": [
                "DEFAULT_MAX_LENGTH",
                "EvalConfig",
                "LoglikelihoodResult",
                "TokenPair",
            ],
            "automixer_core.evaluation.encoding": [
                "encode_instance",
                "encode_pair",
                "encode_pairs",
                "gold_pair",
                "gold_pairs",
                "resolve_max_length",
            ],
            "automixer_core.evaluation.metrics": [
                "BenchmarkResult",
                "evaluate_benchmark",
                "gold_loglikelihoods",
                "mean_stderr",
                "predictions",
                "summarize",
            ],
            "automixer_core.evaluation.scoring": [
                "ScoreStats",
                "loglikelihood",
                "loglikelihood_tokens",
                "score_instances",
            ],
        },
    )

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "BenchmarkResult",
    "EvalConfig",
    "LoglikelihoodResult",
    "ScoreStats",
    "TokenPair",
    "encode_instance",
    "encode_pair",
    "encode_pairs",
    "evaluate_benchmark",
    "gold_loglikelihoods",
    "gold_pair",
    "gold_pairs",
    "loglikelihood",
    "loglikelihood_tokens",
    "mean_stderr",
    "predictions",
    "resolve_max_length",
    "score_instances",
    "summarize",
]
