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


def test_a_membership_regroups_the_corpus_and_leaves_out_what_it_does_not_name(tmp_path: Path) -> None:
    """read_groups with a membership: the group is the membership's, not the folder's; documents it
    does not name are dropped; its domain column regroups the same documents by domain."""
    import pandas as pd

    from automixer_core.mixture import membership_to_parquet
    from automixer_core.proxy.data import read_groups, read_membership

    for domain, n in (("a", 4), ("b", 3)):
        (tmp_path / "corpus" / domain).mkdir(parents=True)
        rows = [json.dumps({"id": f"{domain}{i}", "text": f"text {domain}{i}"}) for i in range(n)]
        (tmp_path / "corpus" / domain / "part.jsonl").write_text("\n".join(rows) + "\n")
    table = pd.DataFrame(
        {
            "doc_id": ["a0", "a1", "b0", "b2"],
            "group": ["x", "residual", "x", "y"],
            "joint_score": [1.0, -1.0, 2.0, 0.5],
            "n_tokens": [2, 2, 2, 2],
            "domain": ["a", "a", "b", "b"],
        }
    )
    path = tmp_path / "membership.parquet"
    path.write_bytes(membership_to_parquet(table))
    corpus = str(tmp_path / "corpus")
    by_group = read_groups(corpus, membership=read_membership(str(path)))
    assert by_group == {"residual": ["text a1"], "x": ["text a0", "text b0"], "y": ["text b2"]}
    by_domain = read_groups(corpus, membership=read_membership(str(path), "domain"))
    assert by_domain == {"a": ["text a0", "text a1"], "b": ["text b0", "text b2"]}
    assert read_groups(corpus) == {
        "a": [f"text a{i}" for i in range(4)],
        "b": [f"text b{i}" for i in range(3)],
    }
    with pytest.raises(ConfigError, match="no column 'topic'"):
        read_membership(str(path), "topic")
    with pytest.raises(ConfigError, match="Cannot read the membership table"):
        read_membership(str(tmp_path / "nope.parquet"))
