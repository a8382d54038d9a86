"""The mixture document: JSON round trip, content-hash id, validation, membership parquet, report."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime

import pandas as pd
import pytest

from automixer_core.aggregation import RESIDUAL, Aggregation, AggregationConfig, aggregate
from automixer_core.errors import AutoMixerError, ConfigError
from automixer_core.mixture import (
    SCHEMA_VERSION,
    Mixture,
    Provenance,
    membership_from_parquet,
    membership_to_parquet,
    mixture_differences,
    mixture_from_aggregation,
)
from automixer_core.plots import capability_emergence
from automixer_core.report import render_report


def _aggregation() -> Aggregation:
    df = pd.DataFrame(
        {
            "doc_id": ["d1", "d2", "d3", "d4", "d5", "d6"],
            "n_tokens": [10, 30, 20, 20, 10, 40],
            "A": [2.0, 1.0, -1.0, 0.0, -2.0, 0.5],
            "B": [1.0, -1.0, 3.0, 2.0, -1.0, 0.2],
            "domain": ["x", "y", "y", "x", "z", "z"],
        }
    )
    # residual_domains off: domain z's density is negative, which would move d6 (tested below)
    return aggregate(
        df, {"A": 300, "B": 100}, AggregationConfig(bootstrap=50, seed=1, residual_domains="off")
    )


def _provenance(**extra: object) -> Provenance:
    return Provenance.model_validate(
        {
            "checkpoints": [
                {"name": "checkpoint-100", "step": 100, "fingerprint": "aa11"},
                {"name": "checkpoint-300", "step": 300, "fingerprint": "bb22", "size_bytes": 123},
            ],
            "artifacts": [
                {"benchmark": "A", "checkpoint": "checkpoint-300", "step": 300, "score": 0.41},
                {
                    "benchmark": "B",
                    "checkpoint": "checkpoint-100",
                    "step": 100,
                    "score": 0.63,
                    "metric": "acc",
                },
            ],
            "estimator": "datainf",
            "layers": ["model.embed_tokens", "lm_head"],
            "alpha": {},
            "config_hash": "cfg0123",
            **extra,
        }
    )


def test_from_aggregation_fields() -> None:
    agg = _aggregation()
    m = mixture_from_aggregation(agg, _provenance(run="nightly"))
    assert m.version == SCHEMA_VERSION
    assert re.fullmatch(r"[0-9a-f]{16}", m.id)
    assert m.weights == pytest.approx(agg.weights)
    assert sum(m.weights.values()) == pytest.approx(1.0)
    assert m.provenance.alpha == pytest.approx({"A": 0.75, "B": 0.25})  # filled from the aggregation
    a = m.group("A")
    assert a.tokens == 80 and a.documents == 3 and a.mean_doc_tokens == pytest.approx(80 / 3)
    assert a.weight_ci is not None and a.weight_ci[0] <= a.weight <= a.weight_ci[1]
    assert sum(d.share for d in a.driven_by) == pytest.approx(1.0)
    assert m.group(RESIDUAL).floored
    assert m.domains is not None and {d.name for d in m.domains} == {"x", "y", "z"}
    assert m.provenance.model_extra == {"run": "nightly"}
    assert m.provenance.checkpoints[1].model_extra == {"size_bytes": 123}
    with pytest.raises(AutoMixerError, match="no group 'C'"):
        m.group("C")


def test_json_round_trip_and_deterministic_id() -> None:
    agg = _aggregation()
    m1 = mixture_from_aggregation(agg, _provenance(created_at=datetime(2024, 1, 1, tzinfo=UTC)))
    m2 = mixture_from_aggregation(agg, _provenance(created_at=datetime(2025, 6, 1, tzinfo=UTC)))
    assert m1.id == m2.id  # created_at is not part of the id
    text = m1.to_json()
    back = Mixture.from_json(text)
    assert back == m1
    assert back.to_json() == text
    assert Mixture.from_json(text.encode()).id == m1.id
    # A different config hash is a different mixture.
    m3 = mixture_from_aggregation(agg, _provenance(config_hash="other"))
    assert m3.id != m1.id


def test_documents_written_before_residual_moves_still_verify() -> None:
    """A document of the code before ``residual_moves`` existed has no such key; its digest was the
    hash of the canonical JSON without it (computed here by hand), and it must still load."""
    m = mixture_from_aggregation(_aggregation(), _provenance())
    m = m.model_copy(update={"residual_moves": []}).with_id()  # as a run that moved nothing
    old = json.loads(m.to_json())
    del old["residual_moves"]
    body = {k: v for k, v in old.items() if k not in ("id", "content_digest")}
    body["provenance"] = {k: v for k, v in body["provenance"].items() if k != "created_at"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert m.content_digest == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert Mixture.from_json(json.dumps(old)).content_digest == m.content_digest


def test_tampered_or_invalid_documents() -> None:
    m = mixture_from_aggregation(_aggregation(), _provenance())
    raw = json.loads(m.to_json())
    raw["groups"][0]["tokens"] += 1
    with pytest.raises(ConfigError, match="does not match its content"):
        Mixture.from_json(json.dumps(raw))
    edited = Mixture.from_json(json.dumps(raw), verify_id=False).with_id()
    assert edited.id == m.id  # the id names the inputs, which did not change
    assert edited.content_digest != m.content_digest  # the values did
    raw = json.loads(m.to_json())
    raw["provenance"]["config_hash"] = "edited"
    with pytest.raises(ConfigError, match="does not match its provenance"):
        Mixture.from_json(json.dumps(raw))

    raw = json.loads(m.to_json())
    raw["groups"][0]["weight"] += 0.1
    with pytest.raises(ConfigError, match="sum to"):
        Mixture.from_json(json.dumps(raw), verify_id=False)
    raw = json.loads(m.to_json())
    raw["version"] = 99
    with pytest.raises(ConfigError, match="version"):
        Mixture.from_json(json.dumps(raw), verify_id=False)
    raw = json.loads(m.to_json())
    raw["surprise"] = 1
    with pytest.raises(ConfigError, match="surprise"):
        Mixture.from_json(json.dumps(raw), verify_id=False)
    raw = json.loads(m.to_json())
    del raw["provenance"]["estimator"]
    with pytest.raises(ConfigError, match=r"provenance\.estimator"):
        Mixture.from_json(json.dumps(raw), verify_id=False)
    with pytest.raises(ConfigError, match="not valid JSON"):
        Mixture.from_json("{nope")


def test_membership_parquet_round_trip() -> None:
    agg = _aggregation()
    data = membership_to_parquet(agg.membership, mixture_id="abc")
    back = membership_from_parquet(data)
    assert back.attrs["mixture_id"] == "abc"
    pd.testing.assert_frame_equal(
        back.reset_index(drop=True), agg.membership.astype({"group": str, "domain": str}), check_dtype=False
    )
    # each document's per-benchmark scores travel with it (users audit documents without the shards)
    scored = agg.membership.assign(score__A=0.5, score__B=[-1.0 * i for i in range(len(agg.membership))])
    back = membership_from_parquet(membership_to_parquet(scored))
    assert back["score__B"].tolist() == scored["score__B"].tolist() and (back["score__A"] == 0.5).all()
    with pytest.raises(AutoMixerError, match="lacks column"):
        membership_to_parquet(agg.membership.drop(columns="group"))
    with pytest.raises(AutoMixerError, match="not a readable parquet"):
        membership_from_parquet(b"not parquet")


def test_report_is_self_contained() -> None:
    agg = _aggregation()
    m = mixture_from_aggregation(agg, _provenance())
    evals = pd.DataFrame(
        {"step": [100, 300, 100, 300], "benchmark": ["A", "A", "B", "B"], "acc_norm": [0.3, 0.41, 0.63, 0.5]}
    )
    cap = capability_emergence(evals)
    page = render_report(m, agg, cap)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert (
        len(images) == 6
    )  # capability, group weights, domain weights, group × domain, score distributions, score vs length  # group weights, score distributions, domain weights, capability
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert base64.b64encode(cap).decode() in images
    assert m.id in page and "datainf" in page and "checkpoint-300" in page
    for g in m.groups:
        assert f"<td>{g.name}</td>" in page
    outside_images = re.sub(r"data:image/png;base64,[^\"]+", "", page)
    assert "http" not in outside_images and "<script" not in outside_images  # nothing fetched
    assert len(re.findall(r"data:image/png", render_report(m))) == 2  # no aggregation, no capability


def test_same_mixture_means_same_inputs_membership_and_values_within_tolerance() -> None:
    """Two computations of one mixture whose floats differ in the last bits are the same mixture;
    a moved document, a changed count or a weight beyond the tolerance is not."""
    agg = _aggregation()
    m = mixture_from_aggregation(agg, _provenance())
    membership = agg.membership.copy()
    # float32 sums in another order: every value moves by a few ulps (relative 1e-7)
    jitter = m.model_copy(
        update={"groups": [g.model_copy(update={"density": g.density * (1 + 3e-7)}) for g in m.groups]}
    ).with_id()
    assert jitter.id == m.id and jitter.content_digest != m.content_digest
    other_scores = membership.assign(joint_score=membership["joint_score"] * (1 + 5e-7))
    assert mixture_differences(m, jitter, membership, other_scores) == []
    # a weight beyond the tolerance, a document in another group, other counts: not the same
    far = m.model_copy(
        update={"groups": [g.model_copy(update={"density": g.density * 1.01 + 1}) for g in m.groups]}
    )
    assert any("density" in d for d in mixture_differences(m, far))
    moved = membership.copy()
    moved.loc[0, "group"] = "residual" if moved.loc[0, "group"] != "residual" else "A"
    assert any("other groups" in d for d in mixture_differences(m, m, membership, moved))
    counted = m.model_copy(update={"groups": [m.groups[0].model_copy(update={"tokens": 1}), *m.groups[1:]]})
    assert any("tokens" in d for d in mixture_differences(m, counted))
    other_inputs = mixture_from_aggregation(agg, _provenance(config_hash="other"))
    assert any(d.startswith("id ") for d in mixture_differences(m, other_inputs))


def test_residual_moves_reach_the_document() -> None:
    """Domain z's joint density is negative (d5 −1.75·10, d6 +0.425·40: −0.5/50 tokens): the domain
    rule (``negative``) moves d6, the one document of z that all_negative (d5) left in a group; no
    joint is < 0 but d5's (d3's is exactly 0)."""
    df = _aggregation().membership.assign(
        A=[2.0, 1.0, -1.0, 0.0, -2.0, 0.5], B=[1.0, -1.0, 3.0, 2.0, -1.0, 0.2]
    )
    agg = aggregate(
        df.drop(columns=["group", "joint_score"]),
        {"A": 300, "B": 100},
        AggregationConfig(bootstrap=0, residual_domains="negative"),
    )
    m = mixture_from_aggregation(agg, _provenance())
    assert [(r.rule, r.documents, r.tokens, r.by_domain) for r in m.residual_moves] == [
        ("all_negative", 1, 10, {"z": 1}),
        ("negative_domain", 1, 40, {"z": 1}),
    ]
    assert Mixture.from_json(m.to_json()).residual_moves == m.residual_moves
    assert m.group("residual").documents == 2
    page = render_report(m)
    assert "Moved to residual" in page and "<td>negative_domain</td><td>1</td><td>40</td><td>z 1</td>" in page
