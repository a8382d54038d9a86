"""How far two group labellings agree, and how well a classifier's probabilities are calibrated.

Used to compare the groups a predictor assigns with the groups scoring assigned (the predictor's
holdout), and the groups of two scorer seeds with each other. Conventions, all ours:

- ``labels`` default to the sorted union of the labels in ``y_true`` and ``y_pred``.
- Per label ℓ with TP/FP/FN counted over the documents: precision = TP/(TP+FP), recall =
  TP/(TP+FN), F1 = 2TP/(2TP+FP+FN), each 0.0 where its denominator is 0 (scikit-learn's
  ``zero_division=0``); support = TP+FN. Macro-F1 is the unweighted mean of F1 over ``labels``.
- The confusion matrix has rows = true label, columns = predicted label, both in ``labels`` order;
  a document whose true or predicted label is not in ``labels`` is not counted.
- Expected calibration error (ECE) of the max probability: confidences fall into ``n_bins``
  equal-width bins with edges i/n_bins (bin i holds lo ≤ c < hi, the last bin also holds 1.0);
  ECE = Σ_bins (n_bin/N) · |accuracy_bin − mean confidence_bin| over the non-empty bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from automixer_core.errors import AutoMixerError

Labels = Sequence[str] | np.ndarray
"""One group name per document: a sequence of str, or a 1-D numpy array of them."""


def _as_labels(values: Labels, name: str) -> np.ndarray:
    """``values`` as a 1-D object array of str, shape (N,)."""
    arr = np.asarray(list(values), dtype=object)
    if arr.ndim != 1:
        raise AutoMixerError(
            f"{name} has shape {arr.shape}",
            expected="a flat sequence of group names",
            fix=f"pass {name} as a list of strings",
        )
    for i, v in enumerate(arr):
        if not isinstance(v, str):
            raise AutoMixerError(
                f"{name}[{i}] is {v!r} ({type(v).__name__})",
                expected="a group name (str) for every document",
                fix=f"drop or relabel the documents whose {name} entry is missing",
            )
    return arr


def _check_pair(y_true: Labels, y_pred: Labels, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a = _as_labels(y_true, names[0])
    b = _as_labels(y_pred, names[1])
    if len(a) != len(b):
        raise AutoMixerError(
            f"{names[0]} has {len(a)} labels but {names[1]} has {len(b)}",
            expected="one label per document in both, in the same document order",
            fix="align both labellings on the same documents (e.g. join on doc_id) first",
        )
    return a, b


def _default_labels(a: np.ndarray, b: np.ndarray) -> list[str]:
    return sorted(set(a.tolist()) | set(b.tolist()))


def confusion_matrix(y_true: Labels, y_pred: Labels, labels: Sequence[str] | None = None) -> np.ndarray:
    """Counts of (true, predicted) label pairs.

    Args:
        y_true: the reference label of each document, shape (N,).
        y_pred: the compared label of each document, shape (N,).
        labels: row/column order; default the sorted union of both.

    Returns:
        int64 array of shape (L, L): entry [i, j] counts documents with true ``labels[i]`` and
        predicted ``labels[j]``.
    """
    a, b = _check_pair(y_true, y_pred, ("y_true", "y_pred"))
    labs = list(labels) if labels is not None else _default_labels(a, b)
    index = {lab: i for i, lab in enumerate(labs)}
    ia = np.array([index.get(v, -1) for v in a], dtype=np.int64)
    ib = np.array([index.get(v, -1) for v in b], dtype=np.int64)
    keep = (ia >= 0) & (ib >= 0)
    out = np.zeros((len(labs), len(labs)), dtype=np.int64)
    np.add.at(out, (ia[keep], ib[keep]), 1)
    return out


def per_label_scores(confusion: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label from a confusion matrix (module conventions).

    Args:
        confusion: shape (L, L), rows = true, columns = predicted.
        labels: the L labels, in the matrix's order.

    Returns:
        label → ``{precision, recall, f1, support}`` (support is the count of true documents).
    """
    conf = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(conf)
    fp = conf.sum(axis=0) - tp
    fn = conf.sum(axis=1) - tp
    out: dict[str, dict[str, float]] = {}
    for i, lab in enumerate(labels):
        p_den, r_den, f_den = tp[i] + fp[i], tp[i] + fn[i], 2 * tp[i] + fp[i] + fn[i]
        out[str(lab)] = {
            "precision": float(tp[i] / p_den) if p_den > 0 else 0.0,
            "recall": float(tp[i] / r_den) if r_den > 0 else 0.0,
            "f1": float(2 * tp[i] / f_den) if f_den > 0 else 0.0,
            "support": int(r_den),
        }
    return out


def macro_f1(y_true: Labels, y_pred: Labels, labels: Sequence[str] | None = None) -> float:
    """Unweighted mean over ``labels`` of the per-label F1 = 2TP/(2TP+FP+FN), ``y_true`` the truth.

    Args:
        y_true: reference labels, shape (N,).
        y_pred: compared labels, shape (N,).
        labels: labels to average over; default the sorted union of both.

    Returns:
        Macro-F1 in [0, 1]; NaN when there are no labels (N = 0 and no ``labels``).
    """
    a, b = _check_pair(y_true, y_pred, ("y_true", "y_pred"))
    labs = list(labels) if labels is not None else _default_labels(a, b)
    if not labs:
        return float("nan")
    per = per_label_scores(confusion_matrix(a, b, labs), labs)
    return float(np.mean([per[str(lab)]["f1"] for lab in labs]))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """ECE of top-label confidences (module conventions: ``n_bins`` equal-width bins on [0, 1]).

    Args:
        confidence: the max predicted probability of each document, shape (N,), in [0, 1].
        correct: whether the top label was right, shape (N,), bool (or 0/1).
        n_bins: number of equal-width bins.

    Returns:
        Σ_bins (n_bin/N)·|accuracy_bin − mean confidence_bin|; NaN when N = 0.
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hit = np.asarray(correct, dtype=np.float64).reshape(-1)
    if conf.shape != hit.shape:
        raise AutoMixerError(
            f"confidence has {conf.size} values but correct has {hit.size}",
            expected="one confidence and one correctness flag per document",
            fix="pass both for the same documents",
        )
    if n_bins < 1:
        raise AutoMixerError(f"n_bins is {n_bins}", expected="n_bins ≥ 1", fix="use n_bins=10")
    if conf.size == 0:
        return float("nan")
    edges = np.arange(n_bins + 1, dtype=np.float64) / n_bins
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_hit = np.bincount(idx, weights=hit, minlength=n_bins)
    nonempty = count > 0
    gap = np.abs(sum_hit[nonempty] - sum_conf[nonempty]) / count[nonempty]
    return float(np.sum(count[nonempty] / conf.size * gap))


def classification_summary(y_true: Labels, y_pred: Labels, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label scores and the confusion matrix of ``y_pred`` against ``y_true``.

    Args:
        y_true: reference labels, shape (N,).
        y_pred: predicted labels, shape (N,).
        labels: every label to report, in the confusion matrix's order (L labels).

    Returns:
        ``accuracy`` (NaN when N = 0); ``macro_f1`` over the labels present in ``y_true`` or
        ``y_pred`` (a label absent from both would add an F1 of 0 that says nothing; NaN when
        N = 0); ``per_group``: label → ``{precision, recall, f1, support}`` for all ``labels``;
        ``confusion``: (L, L) nested lists, rows = true, columns = predicted.
    """
    a, b = _check_pair(y_true, y_pred, ("y_true", "y_pred"))
    labs = [str(x) for x in labels]
    conf = confusion_matrix(a, b, labs)
    per = per_label_scores(conf, labs)
    present = set(a.tolist()) | set(b.tolist())
    f1s = [per[lab]["f1"] for lab in labs if lab in present]
    return {
        "accuracy": float(np.mean(a == b)) if len(a) else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "per_group": per,
        "confusion": conf.tolist(),
    }


def group_agreement(a: Labels, b: Labels) -> dict[str, Any]:
    """Agreement of two group labellings of the same documents (``a`` is taken as the truth).

    Args:
        a: the reference group of each document, shape (N,) (e.g. the scored groups).
        b: the other group of each document, shape (N,) (e.g. predicted, or another seed's).

    Returns:
        ``n``; ``accuracy``: fraction of documents with a == b; ``macro_f1`` (labels = the union);
        ``ari`` and ``ami``: scikit-learn's adjusted Rand index and adjusted mutual information
        (1 = the same partition whatever the names, ≈ 0 = chance). All NaN when N = 0.
    """
    x, y = _check_pair(a, b, ("a", "b"))
    n = len(x)
    if n == 0:
        nan = float("nan")
        return {"n": 0, "accuracy": nan, "macro_f1": nan, "ari": nan, "ami": nan}
    return {
        "n": n,
        "accuracy": float(np.mean(x == y)),
        "macro_f1": macro_f1(x, y),
        "ari": float(adjusted_rand_score(x.tolist(), y.tolist())),
        "ami": float(adjusted_mutual_info_score(x.tolist(), y.tolist())),
    }
