"""Group recovery against partitions whose agreement is known."""

from __future__ import annotations

import pandas as pd
import pytest

from automixer_core.validation.recovery import group_recovery

TEACHES = {"skill_0": "planted_0", "skill_1": "planted_1"}


def _membership(groups: list[str]) -> pd.DataFrame:
    domains = ["skill_0"] * 4 + ["skill_1"] * 4 + ["noise_0"] * 2
    return pd.DataFrame({"doc_id": [f"d{i}" for i in range(10)], "domain": domains, "group": groups})


def test_perfect_recovery_ignores_distractors_and_counts_weights() -> None:
    m = _membership(["planted_0"] * 4 + ["planted_1"] * 4 + ["planted_0", "residual"])
    r = group_recovery(m, TEACHES, {"skill_0": 0.5, "skill_1": 0.3, "noise_0": 0.2}, distractors=["noise_0"])
    assert r["ari"] == pytest.approx(1.0) and r["ami"] == pytest.approx(1.0) and r["correct"] == 1.0
    assert r["documents"] == 8
    assert r["confusion"]["noise_0"] == {"planted_0": 1, "residual": 1}
    assert (r["weight_relevant"], r["weight_distractor"], r["weight_harmful"]) == pytest.approx(
        (0.8, 0.2, 0.0)
    )


def test_swapped_labels_still_agree_but_are_not_correct_and_one_group_is_chance() -> None:
    swapped = group_recovery(_membership(["planted_1"] * 4 + ["planted_0"] * 4 + ["x", "x"]), TEACHES)
    assert swapped["ari"] == pytest.approx(1.0) and swapped["correct"] == 0.0
    one = group_recovery(_membership(["planted_0"] * 8 + ["x", "x"]), TEACHES)
    assert one["ari"] == pytest.approx(0.0) and one["ami"] == pytest.approx(0.0, abs=1e-9)
