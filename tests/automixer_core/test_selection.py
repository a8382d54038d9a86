"""Artifact selection against hand-computed choices."""

from __future__ import annotations

import pandas as pd
import pytest

from automixer_core.errors import CheckpointError, ConfigError
from automixer_core.selection import SelectionConfig, select_artifacts


def _evals() -> pd.DataFrame:
    rows = [
        # checkpoint, step, benchmark, acc, acc_norm
        ("c100", 100, "arc_easy", 0.30, 0.31),
        ("c200", 200, "arc_easy", 0.40, 0.45),
        ("c300", 300, "arc_easy", 0.35, 0.45),  # ties c200 on acc_norm: later step wins
        ("c100", 100, "piqa", 0.55, 0.60),
        ("c200", 200, "piqa", 0.52, 0.58),
        ("c300", 300, "piqa", 0.51, 0.57),
    ]
    return pd.DataFrame(rows, columns=["checkpoint", "step", "benchmark", "acc", "acc_norm"])


def test_best_prefers_later_step_on_ties() -> None:
    sel = select_artifacts(_evals()).set_index("benchmark")
    assert sel.loc["arc_easy", "checkpoint"] == "c300"
    assert "tied" in str(sel.loc["arc_easy", "reason"])
    assert sel.loc["piqa", "checkpoint"] == "c100"
    assert sel.loc["piqa", "score"] == pytest.approx(0.60)


def test_metric_acc() -> None:
    sel = select_artifacts(_evals(), SelectionConfig(metric="acc")).set_index("benchmark")
    assert sel.loc["arc_easy", "checkpoint"] == "c200"


def test_top_k_final_all() -> None:
    top2 = select_artifacts(_evals(), SelectionConfig(strategy="top_k", top_k=2))
    assert top2[top2.benchmark == "piqa"].checkpoint.tolist() == ["c100", "c200"]
    assert top2[top2.benchmark == "arc_easy"].checkpoint.tolist() == ["c300", "c200"]
    final = select_artifacts(_evals(), SelectionConfig(strategy="final"))
    assert set(final.checkpoint) == {"c300"} and len(final) == 2
    every = select_artifacts(_evals(), SelectionConfig(strategy="all"))
    assert len(every) == 6


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="lacks column"):
        select_artifacts(_evals().drop(columns=["acc_norm"]))
    with pytest.raises(ConfigError, match="empty"):
        select_artifacts(_evals().iloc[:0])
    with pytest.raises(ValueError):
        SelectionConfig(strategy="median")  # type: ignore[arg-type]


def test_a_choice_within_one_standard_error_is_flagged_as_noise() -> None:
    evals = _evals()
    evals["acc_norm_stderr"] = [0.01, 0.01, 0.01, 0.05, 0.05, 0.05]  # piqa: 0.60 vs 0.58 and 0.57
    sel = select_artifacts(evals).set_index("benchmark")
    assert (
        sel.loc["piqa", "within_noise"]
        and "within one standard error (±0.0500) of 2" in sel.loc["piqa", "reason"]
    )
    # arc_easy: c300 ties c200 exactly (|Δ| = 0 ≤ 0.01), c100 is 0.14 away
    assert sel.loc["arc_easy", "within_noise"] and "of 1 other" in sel.loc["arc_easy", "reason"]
    evals["acc_norm_stderr"] = 0.005
    evals.loc[evals["checkpoint"] == "c200", "acc_norm"] = [0.40, 0.50]
    sel = select_artifacts(evals).set_index("benchmark")
    assert not sel.loc["piqa", "within_noise"] and "standard error" not in sel.loc["piqa", "reason"]


def test_gold_loglikelihood_is_a_selection_metric() -> None:
    evals = _evals()
    evals["gold_ll"] = [-2.0, -1.5, -1.7, -1.0, -1.2, -0.9]
    sel = select_artifacts(evals, SelectionConfig(metric="gold_ll")).set_index("benchmark")
    assert sel.loc["arc_easy", "checkpoint"] == "c200" and sel.loc["piqa", "checkpoint"] == "c300"
    assert not sel["within_noise"].any()  # no stderr column: nothing to compare against


def test_diverged_checkpoints_are_never_chosen_and_the_reason_says_so() -> None:
    evals = _evals()
    evals["diverged"] = False
    evals["diverged_reason"] = None
    # c100 diverged (its NaN weights evaluated at a lucky score would otherwise win piqa)
    evals.loc[evals["checkpoint"] == "c100", ["acc_norm", "diverged", "diverged_reason"]] = [
        float("nan"),
        True,
        "non-finite weights in 2 parameter(s)",
    ]
    sel = select_artifacts(evals).set_index("benchmark")
    assert sel.loc["piqa", "checkpoint"] == "c200"
    assert "excluded as diverged: c100 (non-finite weights in 2 parameter(s))" in sel.loc["piqa", "reason"]
    # a non-finite score without the flag counts as diverged too; final skips diverged checkpoints
    evals.loc[evals["checkpoint"] == "c300", "acc_norm"] = float("inf")
    final = select_artifacts(evals, SelectionConfig(strategy="final"))
    assert set(final["checkpoint"]) == {"c200"}
    evals["acc_norm"] = float("nan")
    with pytest.raises(CheckpointError, match="Every checkpoint diverged"):
        select_artifacts(evals)


def test_emergence_picks_the_checkpoint_after_the_largest_rise() -> None:
    rows = [
        ("c1", 100, "x", 0.25),
        ("c2", 200, "x", 0.30),
        ("c3", 300, "x", 0.80),  # +0.50: the rise
        ("c4", 400, "x", 1.00),
        ("c1", 100, "y", 0.25),
        ("c2", 200, "y", 0.25),
        ("c3", 300, "y", 0.35),
        ("c4", 400, "y", 0.45),  # +0.10 twice: the later
    ]
    evals = pd.DataFrame(rows, columns=["checkpoint", "step", "benchmark", "acc_norm"])
    sel = select_artifacts(evals, SelectionConfig(strategy="emergence")).set_index("benchmark")
    assert sel.loc["x", "checkpoint"] == "c3" and "+0.5000 from step 200 to 300" in sel.loc["x", "reason"]
    assert sel.loc["y", "checkpoint"] == "c4"
    lone = select_artifacts(evals[evals["checkpoint"] == "c2"], SelectionConfig(strategy="emergence"))
    assert set(lone["checkpoint"]) == {"c2"}
