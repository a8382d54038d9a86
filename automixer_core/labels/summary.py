"""What a labelled corpus holds per group (scored and predicted documents, characters and tokens),
and the sentence that says how well the group predictor did."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from automixer_core.mixture import Mixture


def label_summary(labels: pd.DataFrame, scored_tokens: pd.Series, mixture: Mixture) -> dict[str, Any]:
    """Per-group counts of a labelled corpus, next to the mixture's weights.

    Args:
        labels: one row per corpus document: ``doc_id, group, source`` (``scored`` | ``predicted``),
            ``n_chars`` and ``domain``.
        scored_tokens: the scored documents' token counts (``n_tokens`` of the membership), indexed
            by ``doc_id``; their tokens per character estimate the predicted documents' tokens.
        mixture: the mixture whose groups the labels are.

    Returns ``{"documents", "scored", "predicted", "tokens_per_char", "groups": {group: {"documents",
    "scored", "predicted", "chars", "tokens", "token_share", "weight"}}, "domains": {domain: {group: n}}}``
    where ``tokens`` is exact for scored documents and ``n_chars × tokens_per_char`` for the others, and
    ``weight`` is the mixture's token share for the group (0 for a group the mixture floors out).
    """
    is_scored = labels["source"].eq("scored")
    scored_chars = labels.loc[is_scored].set_index("doc_id")["n_chars"]
    common = scored_chars.index.intersection(scored_tokens.index)
    chars = float(scored_chars.loc[common].sum())
    tokens_per_char = float(scored_tokens.loc[common].sum()) / chars if chars > 0 else 0.0
    tokens = labels["n_chars"].astype(float) * tokens_per_char
    exact = labels["doc_id"].map(scored_tokens)
    tokens = tokens.where(~(is_scored & exact.notna()), exact.astype(float))
    frame = labels.assign(tokens=tokens, scored=is_scored.astype(int), predicted=(~is_scored).astype(int))
    per = frame.groupby("group").agg(
        documents=("doc_id", "size"),
        scored=("scored", "sum"),
        predicted=("predicted", "sum"),
        chars=("n_chars", "sum"),
        tokens=("tokens", "sum"),
    )
    total_tokens = float(per["tokens"].sum())
    weights = {g.name: g.weight for g in mixture.groups}
    groups = {
        str(g): {
            "documents": int(r.documents),
            "scored": int(r.scored),
            "predicted": int(r.predicted),
            "chars": int(r.chars),
            "tokens": round(float(r.tokens)),
            "token_share": float(r.tokens) / total_tokens if total_tokens > 0 else 0.0,
            "weight": float(weights.get(str(g), 0.0)),
        }
        for g, r in per.iterrows()
    }
    domains: dict[str, dict[str, int]] = {}
    if "domain" in labels.columns:
        cross = labels.groupby(["domain", "group"]).size()
        for (d, g), n in zip(cross.index.tolist(), cross.tolist(), strict=True):
            domains.setdefault(str(d), {})[str(g)] = int(n)
    return {
        "documents": len(labels),
        "scored": int(is_scored.sum()),
        "predicted": int((~is_scored).sum()),
        "tokens_per_char": tokens_per_char,
        "groups": groups,
        "domains": domains,
    }


def accuracy_sentence(report: Mapping[str, Any]) -> str:
    """How the predictor did on its holdout, in words, from a stored report (``PredictorReport.to_dict``:
    NaN is None there), e.g. ``held-out accuracy 47.5% (the largest group alone: 36.5%), macro-F1
    19.9% on 181 scored documents (720 to train)``. The baseline is left out where the report has
    none (a predictor stored before it was recorded); a predictor without a holdout says so."""
    accuracy, macro_f1 = report.get("accuracy"), report.get("macro_f1")
    if accuracy is None or macro_f1 is None:
        return (
            f"no held-out documents, so no accuracy ({report.get('n_train', 0):,} to train; "
            "labeling.predictor.holdout > 0 measures it)"
        )
    majority = report.get("majority_accuracy")
    baseline = "" if majority is None else f" (the largest group alone: {100 * majority:.1f}%)"
    return (
        f"held-out accuracy {100 * accuracy:.1f}%{baseline}, macro-F1 {100 * macro_f1:.1f}% on "
        f"{report['n_holdout']:,} scored documents ({report['n_train']:,} to train)"
    )
