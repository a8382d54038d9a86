"""Candidate weights (uniform, natural, temperature, from a mixture) and per-question metrics."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from automixer_core.errors import ConfigError
from automixer_core.validation import ValidationConfig
from automixer_core.validation.candidates import (
    Candidate,
    mixture_weights,
    natural_weights,
    temperature_weights,
    uniform_weights,
)
from automixer_core.validation.metrics import question_metrics

TOKENS = {"code": 100, "math": 300, "web": 600}


def test_candidate_weights_follow_their_rules() -> None:
    assert uniform_weights(list(TOKENS)) == pytest.approx({k: 1 / 3 for k in TOKENS})
    assert natural_weights(TOKENS) == pytest.approx({"code": 0.1, "math": 0.3, "web": 0.6})
    t2 = temperature_weights(TOKENS, 2.0)
    z = math.sqrt(0.1) + math.sqrt(0.3) + math.sqrt(0.6)
    assert t2 == pytest.approx(
        {"code": math.sqrt(0.1) / z, "math": math.sqrt(0.3) / z, "web": math.sqrt(0.6) / z}
    )
    assert temperature_weights(TOKENS, 1.0) == pytest.approx(natural_weights(TOKENS))
    assert temperature_weights(TOKENS, 1e6) == pytest.approx(uniform_weights(list(TOKENS)), abs=1e-5)
    assert mixture_weights({"math": 3, "web": 1}, list(TOKENS), "m") == {
        "code": 0.0,
        "math": 0.75,
        "web": 0.25,
    }


def test_bad_candidates_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"domain\(s\) \['poetry'\] that the corpus does not have"):
        mixture_weights({"poetry": 1.0}, list(TOKENS), "mixtures/x/mixture.json")
    with pytest.raises(ConfigError, match="cannot be normalised"):
        natural_weights({"a": 0, "b": 0})
    with pytest.raises(ConfigError, match="τ"):
        temperature_weights(TOKENS, 0)


def test_equal_weights_share_a_digest_whatever_the_name() -> None:
    a = Candidate("uniform", uniform_weights(list(TOKENS)))
    b = Candidate("temperature", {k: 1 / 3 for k in TOKENS}, source="τ = ∞")
    assert a.digest == b.digest
    assert Candidate("natural", natural_weights(TOKENS)).digest != a.digest


def test_validation_config_checks_its_fields() -> None:
    cfg = ValidationConfig()
    assert cfg.tokens_per_run == 480 * 16 * 128
    with pytest.raises(ValueError, match="not among the candidates"):
        ValidationConfig(candidates=["mixture", "uniform"], baselines=["natural"])
    with pytest.raises(ValueError, match="twice"):
        ValidationConfig(candidates=["mixture", "mixture"], baselines=[])
    with pytest.raises(ValueError, match="group_weights"):
        ValidationConfig(target={"group_weights": {"a": 1.0}})


def test_question_metrics_against_hand_computed_values() -> None:
    per_example = pd.DataFrame(
        {
            "doc_id": ["q1", "q2"],
            "gold": [0, 2],
            "correct": [1.0, 0.0],
            "correct_norm": [0.0, 1.0],
            "logprobs": [[-2.0, -3.0, -9.0], [-8.0, -1.0, -4.0]],
            "choice_lengths": [[4, 2, 3], [2, 1, 8]],
        }
    )
    m = question_metrics(per_example)
    assert list(m.index) == ["q1", "q2"]
    assert m.loc["q1", "gold_ll"] == pytest.approx(-0.5)
    assert m.loc["q1", "margin"] == pytest.approx(-0.5 - (-1.5))
    assert m.loc["q2", "gold_ll"] == pytest.approx(-0.5)
    assert m.loc["q2", "margin"] == pytest.approx(-0.5 - (-1.0))
    assert list(m["acc"]) == [1.0, 0.0] and list(m["acc_norm"]) == [0.0, 1.0]
