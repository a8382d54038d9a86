"""Artifact selection against hand-computed choices."""

from __future__ import annotations

import pandas as pd
import pytest

from automixer_core.errors import ConfigError
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
