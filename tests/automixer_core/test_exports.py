"""Trainer exports: unit conversion by hand, file formats, and a real interleave over the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from automixer_core.errors import ConfigError
from automixer_core.exports import (
    FORMATS,
    document_probabilities,
    gpt_neox_blend,
    hf_interleave,
    megatron_blend,
    mosaic_streams,
    olmo_core_mixture,
    token_shares,
    write_export,
)
from automixer_core.mixture import Mixture, MixtureGroup, Provenance


def _mixture(groups: list[tuple[str, float, int, int]]) -> Mixture:
    """A mixture from (name, weight, tokens, documents) rows."""
    prov = Provenance(
        checkpoints=[], artifacts=[], estimator="grad_dot", layers="embed+head", alpha={}, config_hash="t"
    )
    entries = [
        MixtureGroup(name=n, weight=w, tokens=t, documents=d, density=w, mean_doc_tokens=t / d if d else 0.0)
        for n, w, t, d in groups
    ]
    return Mixture(groups=entries, provenance=prov).with_id()


# A: 60% of tokens, 100 tokens/doc; B: 40%, 400 tokens/doc; C: weight 0 (floored).
HAND = [("A", 0.6, 10_000, 100), ("B", 0.4, 40_000, 100), ("C", 0.0, 500, 10)]


def test_conversion_by_hand() -> None:
    m = _mixture(HAND)
    assert token_shares(m) == pytest.approx({"A": 0.6, "B": 0.4})
    # p ∝ w/L: A 0.6/100 = 0.006, B 0.4/400 = 0.001 → p_A = 6/7, p_B = 1/7.
    p = document_probabilities(m)
    assert p == pytest.approx({"A": 6 / 7, "B": 1 / 7})
    # Check: tokens per drawn document = 6/7*100 + 1/7*400 = 1000/7; A's share = (600/7)/(1000/7) = 0.6.
    assert p["A"] * 100 / (p["A"] * 100 + p["B"] * 400) == pytest.approx(0.6)


def test_each_format() -> None:
    m = _mixture(HAND)
    hf = hf_interleave(m, data_files={"A": "a/*.jsonl"}, seed=3)
    assert hf["groups"] == ["A", "B"] and hf["probabilities"] == pytest.approx([6 / 7, 1 / 7])
    assert hf["data_files"] == {"A": "a/*.jsonl", "B": "data/mixture/B/*.jsonl"}
    assert hf["seed"] == 3 and hf["mixture_id"] == m.id and hf["unit"] == "documents"

    # Megatron: token shares (fixed-length samples), zero-weight C omitted.
    assert megatron_blend(m, prefixes={"B": "/d/b_text_document"}) == (
        "0.6 data/mixture/A_text_document 0.4 /d/b_text_document"
    )
    neox = gpt_neox_blend(m)
    assert neox["train-data-weights"] == pytest.approx([0.6, 0.4])
    assert neox["weight-by-num-documents"] is False

    ms = mosaic_streams(m, remotes={"A": "s3://b/a"}, local_root="/cache", split="train")
    assert ms["streams"]["A"] == {
        "remote": "s3://b/a",
        "local": "/cache/A",
        "proportion": 6 / 7,
        "split": "train",
    }
    assert ms["streams"]["B"]["proportion"] == pytest.approx(1 / 7)
    assert "C" not in ms["streams"]

    olmo = olmo_core_mixture(m, paths={"A": ["/npy/a-*.npy"]})
    assert [s["source_name"] for s in olmo["sources"]] == ["A", "B"]
    assert [s["target_ratio"] for s in olmo["sources"]] == pytest.approx([0.6, 0.4])
    assert olmo["sources"][0]["paths"] == ["/npy/a-*.npy"]

    with pytest.raises(ConfigError, match="unknown or zero-weight"):
        megatron_blend(m, prefixes={"C": "x"})


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_export_parses_back(fmt: str) -> None:
    m = _mixture(HAND)
    name, data = write_export(m, fmt)
    text = data.decode()
    if name.endswith(".json"):
        assert json.loads(text)["probabilities"] == pytest.approx([6 / 7, 1 / 7])
    elif name.endswith((".yml", ".yaml")):
        assert text.startswith(f"# AutoMixer mixture {m.id}")
        obj = yaml.safe_load(text)
        assert obj  # parses
        if fmt == "mosaic_streaming":
            assert sum(s["proportion"] for s in obj["streams"].values()) == pytest.approx(1.0)
        if fmt == "olmo_core":
            assert sum(s["target_ratio"] for s in obj["sources"]) == pytest.approx(1.0)
    else:
        toks = text.split()
        assert [float(t) for t in toks[::2]] == pytest.approx([0.6, 0.4])


def test_unknown_format() -> None:
    with pytest.raises(ConfigError, match="Unknown export format"):
        write_export(_mixture(HAND), "fairseq")


def test_hf_interleave_realizes_token_shares_on_real_corpus(shared_data: Path) -> None:
    """Documents of each real domain, interleaved with the exported probabilities, give the target token shares."""
    from datasets import Dataset, interleave_datasets

    rng = np.random.default_rng(0)
    texts: dict[str, list[str]] = {}
    for part in sorted((shared_data / "corpus").glob("*/part-00000.jsonl")):
        with part.open() as f:
            docs = [json.loads(line)["text"] for line in f if line.strip()]
        pick = rng.permutation(len(docs))[:500]
        texts[part.parent.name] = [docs[i] for i in pick]
    names = sorted(texts)
    lengths = {n: [len(t.split()) for t in texts[n]] for n in names}  # tokens = whitespace words
    target = rng.dirichlet(np.full(len(names), 2.0))
    m = _mixture(
        [(n, float(w), sum(lengths[n]), len(lengths[n])) for n, w in zip(names, target, strict=True)]
    )

    cfg = hf_interleave(m, seed=0)
    parts = [Dataset.from_dict({"group": [n] * len(texts[n]), "n_tokens": lengths[n]}) for n in cfg["groups"]]
    assert len(parts) == len(names)
    mixed = interleave_datasets(
        parts,
        probabilities=cfg["probabilities"],
        seed=cfg["seed"],
        stopping_strategy=cfg["stopping_strategy"],
    )
    table = mixed.with_format("arrow")[:]  # one gather through the indices mapping
    groups = table.column("group").to_numpy(zero_copy_only=False)
    tokens = table.column("n_tokens").to_numpy().astype(np.float64)
    realized = {n: tokens[groups == n].sum() / tokens.sum() for n in names}
    for n, w in zip(names, target, strict=True):
        assert abs(realized[n] - w) < 0.02, (n, realized[n], w, len(mixed))
