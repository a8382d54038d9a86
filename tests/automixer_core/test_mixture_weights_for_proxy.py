"""A published mixture drives proxy sampling: by its groups, or by its domains on a labelled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automixer_core.errors import ConfigError
from automixer_core.proxy.data import resolve_group_weights

MIXTURE = {
    "groups": [{"name": "arc_easy", "weight": 0.75}, {"name": "residual", "weight": 0.25}],
    "domains": [{"name": "math", "weight": 0.6}, {"name": "drama", "weight": 0.4}],
}


def test_domain_weights_are_used_when_groups_are_not_corpus_groups(tmp_path: Path) -> None:
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps(MIXTURE))
    weights = resolve_group_weights(str(path), ["math", "drama", "code"])
    assert weights == pytest.approx({"math": 0.6, "drama": 0.4, "code": 0.0})


def test_group_weights_are_used_when_they_name_corpus_groups(tmp_path: Path) -> None:
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps(MIXTURE))
    assert resolve_group_weights(str(path), ["arc_easy", "residual"]) == pytest.approx(
        {"arc_easy": 0.75, "residual": 0.25}
    )


def test_neither_matching_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps(MIXTURE))
    with pytest.raises(ConfigError, match="does not have"):
        resolve_group_weights(str(path), ["news"])


def test_a_published_mixture_without_its_manifest_is_refused(tmp_path: Path) -> None:
    """An AutoMixer mixture (it carries provenance) is used only once its publish finished."""
    from automixer_core.published import write_manifest
    from automixer_core.store import Store

    path = tmp_path / "mixture.json"
    path.write_text(json.dumps({**MIXTURE, "provenance": {"checkpoints": []}}))
    with pytest.raises(ConfigError, match="publish did not finish"):
        resolve_group_weights(str(path), ["math", "drama"])
    write_manifest(Store(str(tmp_path)), "", ["mixture.json"])
    assert resolve_group_weights(str(path), ["math", "drama"]) == pytest.approx({"math": 0.6, "drama": 0.4})
