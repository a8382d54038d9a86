"""The label flow on a real Prefect API: a remix scores 30 documents per domain, then `label`
gives every one of the corpus's 450 documents a group. Checked against direct computations: the
scored documents keep the remix's group, the others get what the stored predictor predicts for
their text, each document is in the folder of its group once, a re-run labels nothing, and the
errors name their fix."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automixer_core.config import RunConfig
from automixer_core.corpus import iter_documents
from automixer_core.errors import ConfigError
from automixer_core.labels.predictor import GroupPredictor
from automixer_core.store import Store
from flows.label import label_flow
from flows.remix import remix_flow
from tasks.labels import read_membership

pytestmark = pytest.mark.slow

DOMAINS = ["howto", "math", "social"]
DOCS_PER_DOMAIN = 150


@pytest.fixture(scope="module")
def labelled(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("label")
    corpus = root / "corpus"
    for d in DOMAINS:  # the first 150 documents of three real domains
        (corpus / d).mkdir(parents=True)
        lines = (shared_data / "corpus" / d / "part-00000.jsonl").read_text().split("\n")[:DOCS_PER_DOMAIN]
        (corpus / d / "part-00000.jsonl").write_text("\n".join(lines) + "\n")
    run = root / "run"
    run.mkdir()
    for ckpt in proxy_run.checkpoints[2:4]:
        shutil.copytree(ckpt, run / ckpt.name)
    cfg = RunConfig.model_validate(
        {
            "store": str(root / "store"),
            "checkpoints": {"uri": str(run)},
            "benchmarks": {
                "names": ["arc_easy", "piqa"],
                "data_dir": str(shared_data),
                "eval_limit": 8,
                "query_limit": 8,
            },
            "corpus": {"uri": str(corpus), "max_docs_per_file": 30, "shard_docs": 25, "max_doc_chars": 600},
            "influence": {"hessian_samples": 16, "batch_size": 8},
            "aggregation": {"bootstrap": 20},
            "labeling": {
                "predictor": {"n_features": 4096, "min_docs_per_group": 2, "epochs": 5},
                "shard_docs": 40,
                "shards_per_task": 4,
            },
        }
    )
    mixture = remix_flow(cfg)
    out = label_flow(cfg)
    return {"cfg": cfg, "out": out, "mixture": mixture, "corpus": corpus}


def _labels(store: Store, out: dict[str, Any]) -> pd.DataFrame:
    keys = [k for k in store.list(f"labels/{out['id']}/shards") if k.endswith(".parquet")]
    return pd.concat([pd.read_parquet(io.BytesIO(store.read_bytes(k))) for k in keys], ignore_index=True)


def test_every_document_gets_one_group_scored_ones_keep_theirs(labelled: dict[str, Any]) -> None:
    cfg, out = labelled["cfg"], labelled["out"]
    store = Store(cfg.store)
    labels = _labels(store, out)
    docs = list(iter_documents(str(labelled["corpus"])))
    assert sorted(labels["doc_id"]) == sorted(d.id for d in docs)  # every document, once
    assert out["counts"]["documents_labelled"] == len(docs) == len(DOMAINS) * DOCS_PER_DOMAIN
    membership = read_membership(labelled["mixture"]["uri"])
    scored = labels[labels["source"] == "scored"].set_index("doc_id")
    assert len(scored) == len(membership) == 3 * 30
    assert (scored.loc[membership["doc_id"], "group"].to_numpy() == membership["group"].to_numpy()).all()
    summary = json.loads(store.read_text(f"labels/{out['id']}/labels.json"))["summary"]
    assert (summary["documents"], summary["scored"], summary["predicted"]) == (450, 90, 360)
    assert sum(g["documents"] for g in summary["groups"].values()) == 450


def test_predicted_groups_are_what_the_stored_predictor_says(labelled: dict[str, Any]) -> None:
    cfg, out = labelled["cfg"], labelled["out"]
    store = Store(cfg.store)
    predictor = GroupPredictor.from_bytes(
        store.read_bytes(f"labels/predictors/{out['predictor']['digest']}/predictor.pkl")
    )
    labels = _labels(store, out).set_index("doc_id")
    docs = list(iter_documents(str(labelled["corpus"])))
    pred = predictor.predict([d.text for d in docs])
    for doc, group, conf in zip(docs, pred.groups, pred.confidence, strict=True):
        row = labels.loc[doc.id]
        assert row["predicted_group"] == group
        assert row["confidence"] == pytest.approx(float(conf), abs=1e-9)
        if row["source"] == "predicted":
            assert row["group"] == group
    report = out["predictor"]["report"]
    assert report["n_train"] + report["n_holdout"] == 90
    assert 0.0 <= report["accuracy"] <= 1.0


def test_each_document_is_in_the_folder_of_its_group_and_the_export_points_there(
    labelled: dict[str, Any],
) -> None:
    cfg, out = labelled["cfg"], labelled["out"]
    store = Store(cfg.store)
    labels = _labels(store, out).set_index("doc_id")
    doc = json.loads(store.read_text(f"labels/{out['id']}/labels.json"))
    seen: list[str] = []
    for group, files in doc["files"].items():
        for uri in files:
            for line in filter(None, Path(uri).read_text().split("\n")):
                row = json.loads(line)
                assert labels.loc[row["id"], "group"] == group
                seen.append(row["id"])
    assert sorted(seen) == sorted(labels.index)
    hf = json.loads(store.read_text(f"labels/{out['id']}/exports/hf_interleave.json"))
    for group, files in hf["data_files"].items():
        assert files == doc["files"][group] and all(Path(f).is_file() for f in files)


def test_a_rerun_labels_nothing(labelled: dict[str, Any]) -> None:
    again = label_flow(labelled["cfg"])
    assert again["id"] == labelled["out"]["id"]
    assert again["counts"]["shards_labelled"] == 0 and not again["counts"]["predictor_trained"]


def test_a_store_without_a_mixture_says_to_remix_first(labelled: dict[str, Any], tmp_path: Path) -> None:
    cfg = labelled["cfg"].model_copy(update={"store": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match=r"No mixture in store.*automixer remix"):
        label_flow(cfg)


def test_hidden_state_features_label_with_the_proxys_last_checkpoint(labelled: dict[str, Any]) -> None:
    """features: hidden_state — the predictor reads the proxy's mean hidden states; the labels are
    what the stored predictor says with the hidden states of that checkpoint, loaded here anew."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from automixer_core.labels.embedding import mean_hidden_states

    cfg = labelled["cfg"]
    predictor_cfg = cfg.labeling.predictor.model_copy(update={"features": "hidden_state"})
    hidden = cfg.model_copy(
        update={
            "labeling": cfg.labeling.model_copy(update={"predictor": predictor_cfg, "write_documents": False})
        }
    )
    out = label_flow(hidden)
    assert out["id"] != labelled["out"]["id"] and out["counts"]["predictor_trained"]
    store = Store(cfg.store)
    predictor = GroupPredictor.from_bytes(
        store.read_bytes(f"labels/predictors/{out['predictor']['digest']}/predictor.pkl")
    )
    last = sorted(Path(cfg.checkpoints.uri).iterdir(), key=lambda p: int(p.name.split("-")[-1]))[-1]
    assert predictor.checkpoint is not None and predictor.checkpoint["name"] == last.name
    model = AutoModelForCausalLM.from_pretrained(last).eval()
    tokenizer = AutoTokenizer.from_pretrained(last)
    docs = list(iter_documents(str(labelled["corpus"])))[::15]  # a sample of every domain

    def embed(texts: list[str]) -> Any:
        return mean_hidden_states(model, tokenizer, texts, max_tokens=predictor_cfg.hidden_max_tokens)

    pred = predictor.predict([d.text for d in docs], embed=embed)
    labels = _labels(store, out).set_index("doc_id")
    assert len(labels) == len(DOMAINS) * DOCS_PER_DOMAIN
    for doc, group, conf in zip(docs, pred.groups, pred.confidence, strict=True):
        assert labels.loc[doc.id, "predicted_group"] == group
        assert labels.loc[doc.id, "confidence"] == pytest.approx(float(conf), abs=1e-4)
