"""Metrics: acc, acc_norm, gold log-likelihood per character and their standard errors, and
:func:`evaluate_benchmark`, which scores a benchmark's questions and summarizes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automixer_core.benchmarks.instances import MultipleChoiceInstance
from automixer_core.benchmarks.loading import select_rows
from automixer_core.evaluation.config import EvalConfig, LoglikelihoodResult
from automixer_core.evaluation.scoring import ScoreStats, score_instances


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
