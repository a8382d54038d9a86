"""Agreement and calibration metrics against brute-force pure-Python loops and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from automixer_core.errors import AutoMixerError
from automixer_core.labels import (
    classification_summary,
    confusion_matrix,
    expected_calibration_error,
    group_agreement,
    macro_f1,
    per_label_scores,
)

TOL = 1e-12
NAMES = ["arc_easy", "piqa", "residual", "sciq", "hellaswag"]


def _random_labels(seed: int, n: int, k_true: int, k_pred: int) -> tuple[list[str], list[str]]:
    """Labels from overlapping name sets (some labels only in one of the two), agreeing ~half the time."""
    rng = np.random.default_rng(seed)
    true = [NAMES[i] for i in rng.integers(0, k_true, n)]
    pred = [t if rng.random() < 0.5 else NAMES[int(rng.integers(1, k_pred + 1))] for t in true]
    return true, pred


def _brute(true: list[str], pred: list[str], labels: list[str]) -> dict[str, object]:
    """Every metric by counting pairs in plain Python."""
    conf = [
        [sum(1 for t, p in zip(true, pred, strict=True) if t == a and p == b) for b in labels] for a in labels
    ]
    per: dict[str, dict[str, float]] = {}
    for lab in labels:
        tp = sum(1 for t, p in zip(true, pred, strict=True) if t == lab and p == lab)
        fp = sum(1 for t, p in zip(true, pred, strict=True) if t != lab and p == lab)
        fn = sum(1 for t, p in zip(true, pred, strict=True) if t == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0  # harmonic mean, not 2TP/(2TP+FP+FN)
        per[lab] = {"precision": prec, "recall": rec, "f1": f1, "support": tp + fn}
    acc = sum(1 for t, p in zip(true, pred, strict=True) if t == p) / len(true)
    return {"confusion": conf, "per": per, "accuracy": acc}


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_brute_force(seed: int) -> None:
    true, pred = _random_labels(seed, n=150 + 37 * seed, k_true=3 + seed % 3, k_pred=4)
    union = sorted(set(true) | set(pred))
    ref = _brute(true, pred, union)
    assert confusion_matrix(true, pred).tolist() == ref["confusion"]
    per = per_label_scores(confusion_matrix(true, pred, union), union)
    ref_per = ref["per"]
    assert isinstance(ref_per, dict)
    for lab in union:
        for key in ("precision", "recall", "f1"):
            assert per[lab][key] == pytest.approx(ref_per[lab][key], abs=TOL)
        assert per[lab]["support"] == ref_per[lab]["support"]
    ref_macro = sum(ref_per[lab]["f1"] for lab in union) / len(union)
    assert macro_f1(true, pred) == pytest.approx(ref_macro, abs=TOL)
    summary = classification_summary(true, pred, union)
    assert summary["accuracy"] == pytest.approx(ref["accuracy"], abs=TOL)
    assert summary["macro_f1"] == pytest.approx(ref_macro, abs=TOL)
    assert summary["confusion"] == ref["confusion"]


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_sklearn(seed: int) -> None:
    true, pred = _random_labels(100 + seed, n=300, k_true=4, k_pred=4)
    union = sorted(set(true) | set(pred))
    assert macro_f1(true, pred) == pytest.approx(
        skm.f1_score(true, pred, labels=union, average="macro", zero_division=0), abs=TOL
    )
    np.testing.assert_array_equal(
        confusion_matrix(true, pred, union), skm.confusion_matrix(true, pred, labels=union)
    )
    p, r, f, s = skm.precision_recall_fscore_support(true, pred, labels=union, zero_division=0)
    per = per_label_scores(confusion_matrix(true, pred, union), union)
    for i, lab in enumerate(union):
        assert per[lab]["precision"] == pytest.approx(p[i], abs=TOL)
        assert per[lab]["recall"] == pytest.approx(r[i], abs=TOL)
        assert per[lab]["f1"] == pytest.approx(f[i], abs=TOL)
        assert per[lab]["support"] == s[i]
    assert classification_summary(true, pred, union)["accuracy"] == pytest.approx(
        skm.accuracy_score(true, pred), abs=TOL
    )


def test_hand_case() -> None:
    true = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    # a: TP 2, FP 0, FN 1 → P 1, R 2/3, F1 4/5; b: TP 1, FP 1, FN 1 → 1/2, 1/2, 1/2;
    # c: TP 1, FP 1, FN 0 → 1/2, 1, 2/3.
    per = per_label_scores(confusion_matrix(true, pred), ["a", "b", "c"])
    assert per["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert per["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert macro_f1(true, pred) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert confusion_matrix(true, pred).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_summary_reports_absent_label_but_averages_present_ones() -> None:
    s = classification_summary(["a", "b"], ["a", "a"], ["a", "b", "z"])
    assert s["per_group"]["z"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # a: P 1/2, R 1 → F1 2/3; b: F1 0. z is in neither, so not averaged.
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert s["confusion"] == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    empty = classification_summary([], [], ["a", "b"])
    assert math.isnan(empty["accuracy"]) and math.isnan(empty["macro_f1"])


def _ece_brute(conf: list[float], hit: list[bool], n_bins: int) -> float:
    total = 0.0
    for i in range(n_bins):
        lo, hi = i / n_bins, (i + 1) / n_bins
        members = [j for j, c in enumerate(conf) if lo <= c < hi or (i == n_bins - 1 and c == 1.0)]
        if members:
            acc = sum(1.0 for j in members if hit[j]) / len(members)
            mean_conf = sum(conf[j] for j in members) / len(members)
            total += len(members) / len(conf) * abs(acc - mean_conf)
    return total


@pytest.mark.parametrize("seed", range(5))
def test_ece_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 500
    conf = rng.uniform(0.25, 1.0, n)
    conf[:6] = [0.3, 0.5, 0.7, 1.0, 0.9, 0.25]  # on bin edges
    hit = rng.random(n) < conf**2  # overconfident
    n_bins = 10 if seed < 3 else 7
    got = expected_calibration_error(conf, hit, n_bins)
    assert got == pytest.approx(_ece_brute(conf.tolist(), hit.tolist(), n_bins), abs=TOL)


def test_ece_hand_case() -> None:
    # Bin [0.9, 1.0]: confidences 0.95, 1.0, both right → |1 - 0.975| = 0.025, weight 2/4.
    # Bin [0.6, 0.7): 0.6, 0.65, one right → |0.5 - 0.625| = 0.125, weight 2/4.
    ece = expected_calibration_error(np.array([0.95, 1.0, 0.6, 0.65]), np.array([True, True, True, False]))
    assert ece == pytest.approx(0.5 * 0.025 + 0.5 * 0.125)
    assert expected_calibration_error(np.array([0.8, 0.8]), np.array([1, 0])) == pytest.approx(0.3)
    assert math.isnan(expected_calibration_error(np.zeros(0), np.zeros(0)))
    with pytest.raises(AutoMixerError, match="confidence has 2 values but correct has 1"):
        expected_calibration_error(np.array([0.5, 0.6]), np.array([True]))


def test_group_agreement_matches_sklearn_and_ignores_names_for_ari() -> None:
    true, pred = _random_labels(7, n=200, k_true=4, k_pred=4)
    out = group_agreement(true, pred)
    assert out["n"] == 200
    assert out["accuracy"] == pytest.approx(
        sum(t == p for t, p in zip(true, pred, strict=True)) / 200, abs=TOL
    )
    assert out["macro_f1"] == pytest.approx(macro_f1(true, pred), abs=TOL)
    assert out["ari"] == pytest.approx(skm.adjusted_rand_score(true, pred), abs=TOL)
    assert out["ami"] == pytest.approx(skm.adjusted_mutual_info_score(true, pred), abs=TOL)
    # The same partition under other names (two scorer seeds naming groups differently).
    renamed = [{"arc_easy": "x", "piqa": "y", "residual": "z", "sciq": "w"}[t] for t in true]
    same = group_agreement(true, renamed)
    assert same["ari"] == pytest.approx(1.0) and same["ami"] == pytest.approx(1.0)
    assert same["accuracy"] == 0.0 and same["macro_f1"] == 0.0
    ident = group_agreement(true, true)
    assert ident["accuracy"] == 1.0 and ident["macro_f1"] == 1.0


def test_group_agreement_errors_and_empty() -> None:
    with pytest.raises(AutoMixerError, match="a has 2 labels but b has 3"):
        group_agreement(["x", "y"], ["x", "y", "z"])
    with pytest.raises(AutoMixerError, match=r"b\[1\] is None"):
        group_agreement(["x", "y"], ["x", None])  # type: ignore[list-item]
    empty = group_agreement([], [])
    assert empty["n"] == 0 and math.isnan(empty["accuracy"]) and math.isnan(empty["ari"])
