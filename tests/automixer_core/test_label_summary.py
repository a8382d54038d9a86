"""label_summary against a brute-force count, and the export options for folders per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automixer_core.exports import folder_export_options, write_export
from automixer_core.labels.summary import label_summary
from automixer_core.mixture import Mixture, MixtureGroup, Provenance


def _mixture(weights: dict[str, float]) -> Mixture:
    prov = Provenance(
        checkpoints=[], artifacts=[], estimator="datainf", layers="embed_head", alpha={}, config_hash="h"
    )
    groups = [
        MixtureGroup(name=n, weight=w, tokens=100, documents=1, density=w, mean_doc_tokens=100.0)
        for n, w in weights.items()
    ]
    return Mixture(groups=groups, domains=[], provenance=prov).with_id()


def test_label_summary_matches_a_brute_force_count() -> None:
    rng = np.random.default_rng(3)
    n = 400
    labels = pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(n)],
            "group": rng.choice(["a", "b", "residual"], n),
            "source": rng.choice(["scored", "predicted"], n, p=[0.3, 0.7]),
            "n_chars": rng.integers(10, 500, n),
            "domain": rng.choice(["x", "y"], n),
        }
    )
    scored_ids = labels.loc[labels["source"] == "scored", "doc_id"]
    scored_tokens = pd.Series(rng.integers(3, 150, len(scored_ids)), index=scored_ids.to_numpy())
    mixture = _mixture({"a": 0.7, "b": 0.3})
    out = label_summary(labels, scored_tokens, mixture)

    # brute force, one document at a time
    chars = sum(int(r.n_chars) for r in labels.itertuples() if r.source == "scored")
    ratio = sum(int(scored_tokens[r.doc_id]) for r in labels.itertuples() if r.source == "scored") / chars
    assert out["tokens_per_char"] == pytest.approx(ratio, rel=1e-12)
    tokens: dict[str, float] = {}
    for r in labels.itertuples():
        t = float(scored_tokens[r.doc_id]) if r.source == "scored" else r.n_chars * ratio
        tokens[r.group] = tokens.get(r.group, 0.0) + t
    total = sum(tokens.values())
    for g, v in out["groups"].items():
        rows = labels[labels["group"] == g]
        assert v["documents"] == len(rows)
        assert v["scored"] == int((rows["source"] == "scored").sum())
        assert v["predicted"] == int((rows["source"] == "predicted").sum())
        assert v["chars"] == int(rows["n_chars"].sum())
        assert v["tokens"] == round(tokens[g])
        assert v["token_share"] == pytest.approx(tokens[g] / total, rel=1e-12)
        assert v["weight"] == {"a": 0.7, "b": 0.3}.get(g, 0.0)
    assert (out["documents"], out["scored"]) == (n, len(scored_ids))
    assert sum(sum(d.values()) for d in out["domains"].values()) == n
    assert out["domains"]["x"].get("a", 0) == int(
        ((labels["domain"] == "x") & (labels["group"] == "a")).sum()
    )


def test_folder_export_options_point_each_format_at_the_group_folders() -> None:
    mixture = _mixture({"a": 0.6, "b": 0.4, "residual": 0.0})
    files = {
        "a": ["s3://b/l/by_group/a/1.jsonl"],
        "b": ["s3://b/l/by_group/b/1.jsonl"],
        "residual": ["r.jsonl"],
    }
    hf = folder_export_options(mixture, "hf_interleave", "s3://b/l/by_group", files)
    assert hf == {"data_files": {"a": files["a"], "b": files["b"]}}  # weight 0: left out
    _, content = write_export(mixture, "hf_interleave", **hf)
    assert b"s3://b/l/by_group/a/1.jsonl" in content
    _, blend = write_export(
        mixture, "megatron", **folder_export_options(mixture, "megatron", "s3://b/l", files)
    )
    assert b"s3://b/l/a_text_document" in blend
    mosaic = folder_export_options(mixture, "mosaic_streaming", "s3://b/l", files)
    assert mosaic == {"remote_root": "s3://b/l"}
