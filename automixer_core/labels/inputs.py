"""The predictor's inputs checked (texts, groups, score columns), and its holdout split.

See :mod:`automixer_core.labels.predictor` for the split rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from automixer_core.errors import AutoMixerError, CorpusError


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise CorpusError(
            "texts is a single string",
            expected="a sequence of documents (str)",
            fix="pass a list of texts, e.g. [text]",
        )
    docs = list(texts)
    for i, t in enumerate(docs):
        if not isinstance(t, str):
            raise CorpusError(
                f"Document {i} is {type(t).__name__} ({t!r:.60})",
                expected="every document's text as str",
                fix="drop the documents without text, or fill them with ''",
            )
    return docs


def check_groups(groups: Sequence[str], n: int) -> np.ndarray:
    labels = list(groups)
    if len(labels) != n:
        raise AutoMixerError(
            f"{n} texts but {len(labels)} groups",
            expected="one group per text, in the same order",
            fix="pass the texts and groups of the same scored documents",
        )
    for i, g in enumerate(labels):
        if not isinstance(g, str):
            raise AutoMixerError(
                f"The group of document {i} is {g!r} ({type(g).__name__})",
                expected="a group name (str) for every scored document",
                fix="drop the documents without a group",
            )
    return np.asarray(labels, dtype=object)


def check_scores(scores: pd.DataFrame, n: int) -> tuple[list[str], np.ndarray]:
    if not isinstance(scores, pd.DataFrame):
        raise AutoMixerError(
            f"scores is a {type(scores).__name__}",
            expected="a pandas DataFrame with one float column per benchmark score",
            fix="pass a DataFrame, or scores=None",
        )
    if len(scores) != n:
        raise AutoMixerError(
            f"The scores frame has {len(scores)} rows but there are {n} texts",
            expected="one row of scores per text, in the same order",
            fix="pass the score rows of the same scored documents",
        )
    columns = [str(c) for c in scores.columns]
    if not columns:
        raise AutoMixerError(
            "The scores frame has no columns",
            expected="at least one score column",
            fix="pass scores=None, or set predict_scores=False",
        )
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise AutoMixerError(
            f"Score column(s) {dup} appear more than once",
            expected="unique score column names",
            fix="rename or drop the duplicated columns",
        )
    try:
        mat = scores.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AutoMixerError(
            f"Score columns {columns} are not all numeric ({exc})",
            expected="float score columns",
            fix="pass only the benchmark score columns (drop doc_id, group, domain)",
        ) from exc
    bad = ~np.isfinite(mat)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise AutoMixerError(
            f"{int(bad.sum())} score(s) are NaN or infinite, first: row {int(r)}, column {columns[c]!r}",
            expected="finite scores for every document",
            fix="drop those documents, or re-run scoring for them",
        )
    return columns, mat


def holdout_split(groups: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/holdout indices (module docstring), each sorted ascending."""
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    hold: list[np.ndarray] = []
    for g in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == g)
        perm = idx[rng.permutation(len(idx))]
        n_g = len(idx)
        h = 0 if holdout <= 0 or n_g < 2 else min(max(1, math.floor(holdout * n_g + 0.5)), n_g - 1)
        hold.append(perm[:h])
        train.append(perm[h:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(hold))
