"""Per-question metrics of a multiple-choice evaluation, from the evaluation's per-example table."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The metrics compared per question. ``acc``/``acc_norm``: 0/1 as lm-eval scores them;
#: ``gold_ll``: the gold continuation's log-likelihood per character (nats/char); ``margin``: the
#: gold's log-likelihood per character minus the best other choice's (nats/char; > 0 = correct by
#: acc_norm). The last two move long before accuracy leaves chance.
METRICS = ("acc", "acc_norm", "gold_ll", "margin")


def question_metrics(per_example: pd.DataFrame) -> pd.DataFrame:
    """One row per question (index ``doc_id``), one column per name in :data:`METRICS`.

    Args:
        per_example: the evaluation's table (``doc_id, gold, correct, correct_norm, logprobs,
            choice_lengths``; ``logprobs`` and ``choice_lengths`` hold one value per choice).
    """
    rows = []
    for gold, lls, lengths in zip(
        per_example["gold"], per_example["logprobs"], per_example["choice_lengths"], strict=True
    ):
        per_char = np.asarray(lls, dtype=np.float64) / np.asarray(lengths, dtype=np.float64)
        others = np.delete(per_char, int(gold))
        rows.append((per_char[int(gold)], per_char[int(gold)] - others.max()))
    ll, margin = (np.asarray(c, dtype=np.float64) for c in zip(*rows, strict=True)) if rows else ([], [])
    return pd.DataFrame(
        {
            "acc": per_example["correct"].to_numpy(dtype=np.float64),
            "acc_norm": per_example["correct_norm"].to_numpy(dtype=np.float64),
            "gold_ll": ll,
            "margin": margin,
        },
        index=pd.Index(per_example["doc_id"].astype(str), name="doc_id"),
    )
