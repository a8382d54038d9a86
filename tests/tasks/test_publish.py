"""The publish step: notes that name what vanished, a report built from the store's own files
(sample documents read from their shards), artifacts a person can read, links that open, and a
validation added to a published report without breaking its manifest."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import tasks.mixture_artifacts
import tasks.mixture_inputs
from automixer_core.aggregation import AggregationConfig
from automixer_core.config import CorpusConfig
from automixer_core.corpus import make_shards, read_shard
from automixer_core.errors import ConfigError, StorageError
from automixer_core.influence import InfluenceConfig
from automixer_core.mixture import Driver, membership_from_parquet, mixture_from_aggregation
from automixer_core.published import read_published_mixture
from automixer_core.selection import select_artifacts
from automixer_core.store import Store
from tasks.corpus import shard_from_dict
from tasks.keys import score_key
from tasks.publish import add_validation_to_report, publish_task, vanished_notes
from tests.automixer_core.test_mixture import _aggregation, _provenance
from tests.automixer_core.test_report import _validation

BENCHES = ["arc_easy", "piqa"]
STEPS = [100, 200, 300]
MARKUP = "<script>alert('owned')</script> & friends "


def test_domains_and_groups_absent_since_the_previous_mixture_are_named() -> None:
    agg = _aggregation()
    previous = mixture_from_aggregation(agg, _provenance())
    assert vanished_notes(previous, agg) == []  # nothing gone: nothing said
    smaller = agg.domains
    assert smaller is not None
    agg.domains = smaller[smaller["name"] != "z"].reset_index(drop=True)
    agg.groups = agg.groups[agg.groups["name"] != "B"].reset_index(drop=True)
    notes = vanished_notes(previous, agg)
    assert any("domain(s) z of" in n and previous.id in n for n in notes)
    assert any("group(s) B of" in n for n in notes)
    assert not any("[" in n for n in notes)  # names, not a Python list


def _corpus(root: Path) -> CorpusConfig:
    """Two domains of 8 documents each (long texts that begin with markup)."""
    for domain in ("web", "code"):
        (root / domain).mkdir(parents=True)
        with open(root / domain / "part.jsonl", "w") as f:
            for i in range(8):
                text = f"{MARKUP}{domain} document {i} " + "x" * 400
                f.write(json.dumps({"id": f"{domain}-{i}", "text": text}) + "\n")
    return CorpusConfig(uri=str(root), shard_docs=3)


def _world(tmp_path: Path) -> dict[str, Any]:
    """A store with what a remix has written before publishing: score files per (artifact
    checkpoint, benchmark, shard) and the evaluation report's folder (evals.parquet, capability.png)."""
    store = Store(tmp_path / "store")
    corpus = _corpus(tmp_path / "corpus")
    shards = [
        {"file": s.file, "start": s.start, "stop": s.stop, "digest": s.digest}
        for s in make_shards(corpus.uri, corpus.shard_docs)
    ]
    checkpoints = [{"name": f"checkpoint-{s}", "step": s, "fingerprint": f"fp{s}"} for s in STEPS]
    evals = pd.DataFrame(
        [
            {
                "checkpoint": f"checkpoint-{s}",
                "step": s,
                "benchmark": b,
                "acc_norm": 0.3 + 0.0004 * s * (i + 1),
                "acc_norm_stderr": 0.01,
                "n": 50,
                "chance": 0.25,
            }
            for s in STEPS
            for i, b in enumerate(BENCHES)
        ]
    )
    selection = select_artifacts(evals)
    buf = io.BytesIO()
    evals.to_parquet(buf, index=False)
    store.write_bytes("reports/evaluation/abc/evals.parquet", buf.getvalue())
    store.write_bytes("reports/evaluation/abc/capability.png", b"not used: evals.parquet is there")
    rng = np.random.default_rng(0)
    fp_of = {c["name"]: c["fingerprint"] for c in checkpoints}
    score_keys: dict[str, dict[str, list[str]]] = {}
    for r in selection.itertuples():
        fp = fp_of[r.checkpoint]
        for shard in shards:
            docs = list(read_shard(corpus.uri, shard_from_dict(shard)))
            frame = pd.DataFrame(
                {
                    "doc_id": [d.id for d in docs],
                    "domain": [d.group for d in docs],
                    "n_tokens": rng.integers(10, 300, len(docs)),
                    "loss": 1.0,
                    f"score__{r.benchmark}": rng.normal(0.002, 0.01, len(docs)),
                }
            )
            key = score_key(fp, r.benchmark, "h", shard["digest"])
            out = io.BytesIO()
            frame.to_parquet(out, index=False)
            store.write_bytes(key, out.getvalue())
            score_keys.setdefault(fp, {}).setdefault(r.benchmark, []).append(key)
    return {
        "store": store,
        "corpus": corpus,
        "shards": shards,
        "checkpoints": checkpoints,
        "selection": selection.to_dict(orient="records"),
        "score_keys": score_keys,
    }


class _Artifacts:
    """Records the Prefect artifacts the publish step creates (no API needed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any = tasks.mixture_artifacts) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.markdown: dict[str, str] = {}
        self.links: dict[str, str] = {}
        monkeypatch.setattr(module, "create_table_artifact", self._table)
        monkeypatch.setattr(module, "create_markdown_artifact", self._markdown)
        if hasattr(module, "create_link_artifact"):
            monkeypatch.setattr(module, "create_link_artifact", self._link)

    def _table(self, *, key: str, table: list[dict[str, Any]], **_: Any) -> None:
        self.tables[key] = table

    def _markdown(self, *, key: str, markdown: str, **_: Any) -> None:
        self.markdown[key] = markdown

    def _link(self, *, key: str, link: str, **_: Any) -> None:
        self.links[key] = link


def _publish(world: dict[str, Any], **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = publish_task.fn(
        world["store"].uri(),
        world["checkpoints"],
        world["selection"],
        world["score_keys"],
        InfluenceConfig(),
        AggregationConfig(bootstrap=20),
        ["megatron", "hf_interleave"],
        "cfg",
        "reports/evaluation/abc/capability.png",
        **extra,
    )
    return result


def test_publish_writes_a_report_from_the_store_and_readable_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(tmp_path)
    artifacts = _Artifacts(monkeypatch)
    out = _publish(world, corpus=world["corpus"], shards=world["shards"])
    store: Store = world["store"]
    mixture = read_published_mixture(out["uri"])  # the manifest verifies
    folder = f"mixtures/{mixture.id}"
    page = store.read_text(f"{folder}/report.html")

    # membership.parquet holds what the report says it holds
    membership = membership_from_parquet(store.read_bytes(f"{folder}/membership.parquet"))
    assert {"doc_id", "group", "joint_score", "n_tokens", "domain", *(f"score__{b}" for b in BENCHES)} <= set(
        membership.columns
    )
    assert len(membership) == 16 and membership[[f"score__{b}" for b in BENCHES]].notna().all().all()
    assert "membership.parquet</a> holds one row per scored document" in page

    # the capability panel is drawn from evals.parquet beside capability.png (not the png itself)
    assert "<h2 id='capability'>" in page and "arc_easy" in page
    assert base64.b64encode(b"not used: evals.parquet is there").decode() not in page

    # sample documents: read from their shards, escaped, cut to 300 characters
    assert "<script>" not in page
    texts = {
        d.id: d.text for s in world["shards"] for d in read_shard(world["corpus"].uri, shard_from_dict(s))
    }
    picked = tasks.mixture_inputs.pick_samples(membership, seed=0)
    assert len(picked) == sum(min(3, int(n)) for n in membership["group"].value_counts())
    for row in picked.itertuples():
        assert f"<div class='doc'>{html.escape(texts[row.doc_id][:300])}…</div>" in page
    assert len(re.findall(r"<div class='doc'>", page)) == len(picked)

    # links to every file of the folder, relative
    for name in (
        "mixture.json",
        "membership.parquet",
        "exports/megatron_data_blend.txt",
        "exports/hf_interleave.json",
    ):
        assert f'href="{name}"' in page
        assert store.exists(f"{folder}/{name}")

    # artifacts: short strings with units, no lists; images small; where the files are
    weights = artifacts.tables["mixture-weights"]
    assert [r["group"] for r in weights] == [
        g.name for g in sorted(mixture.groups, key=lambda g: (-g.weight, g.name))
    ]
    for row in weights:
        assert all(isinstance(v, str) for v in row.values())
        assert re.fullmatch(r"\d+\.\d%", row["weight"]) and re.fullmatch(r"\d+\.\d%", row["token share"])
        assert re.fullmatch(r"\d+\.\d–\d+\.\d%", row["interval"])
        assert len(row["driven by"]) <= 40
    # the top ARTIFACT_DRIVERS benchmarks with a share, in order (more overflow the UI's table)
    top = tasks.mixture_artifacts.ARTIFACT_DRIVERS
    drivers = [Driver(benchmark=f"bench_{i}", share=s, contribution=s) for i, s in enumerate([0.5, 0.3, 0.2])]
    groups = [g.model_copy(update={"driven_by": drivers}) for g in mixture.groups] + mixture.groups
    for g in groups:
        (row,) = tasks.mixture_artifacts.weight_rows([g], "group")
        named = [d for d in g.driven_by if d.share > 0][:top]
        assert row["driven by"] == (", ".join(f"{d.benchmark} {100 * d.share:.0f}%" for d in named) or "–")
    assert (
        tasks.mixture_artifacts.weight_rows(groups[:1], "group")[0]["driven by"] == "bench_0 50%, bench_1 30%"
    )
    total = int(membership["n_tokens"].sum())
    for g in mixture.groups:
        row = next(r for r in weights if r["group"] == g.name)
        tokens = int(membership.loc[membership["group"] == g.name, "n_tokens"].sum())
        assert row["token share"] == f"{100 * tokens / total:.1f}%" and row["tokens"] == f"{tokens:,}"
    assert all(isinstance(v, str) for r in artifacts.tables["mixture-domain-weights"] for v in r.values())
    summary = artifacts.markdown["mixture-summary"]
    images = re.findall(r"\(data:image/png;base64,([^)]+)\)", summary)
    assert len(images) == 1
    png = base64.b64decode(images[0])
    assert len(png) < 150_000 and Image.open(io.BytesIO(png)).format == "PNG"
    assert "a browser does not open them" in summary and store.path(f"{folder}/report.html") in summary
    assert artifacts.links["mixture-report"] == Path(store.path(f"{folder}/report.html")).as_uri()


def test_publish_without_the_corpus_says_why_no_documents_are_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(tmp_path)
    _Artifacts(monkeypatch)
    out = _publish(world)
    page = world["store"].read_text(f"mixtures/{out['id']}/report.html")
    assert "not given the corpus" in page and "<div class='doc'>" not in page


def test_a_validation_is_added_to_the_published_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(tmp_path)
    _Artifacts(monkeypatch)
    out = _publish(world, corpus=world["corpus"], shards=world["shards"])
    store: Store = world["store"]
    folder = f"mixtures/{out['id']}"
    before = store.read_json(f"{folder}/manifest.json")
    doc = _validation(out["id"])
    uri = add_validation_to_report(store.uri(), out["id"], doc)
    assert uri == store.uri(f"{folder}/report.html")
    page = store.read_text(f"{folder}/report.html")
    assert "<b>Validated</b>" in page and "val123" in page and "Not validated yet" not in page
    after = store.read_json(f"{folder}/manifest.json")
    assert set(after["files"]) == set(before["files"])  # the same files ...
    report = store.read_bytes(f"{folder}/report.html")
    assert after["files"]["report.html"]["sha256"] == hashlib.sha256(report).hexdigest()  # ... new digest
    for name, entry in after["files"].items():
        assert entry["sha256"] == hashlib.sha256(store.read_bytes(f"{folder}/{name}")).hexdigest()
    assert read_published_mixture(out["uri"]).id == out["id"]
    add_validation_to_report(store.uri(), out["id"], {**doc, "id": "val999"})  # replaces, once
    page = store.read_text(f"{folder}/report.html")
    assert page.count("<h2 id='validation'>") == 1 and "val999" in page and "val123" not in page
    with pytest.raises(StorageError, match="No complete mixture"):
        add_validation_to_report(store.uri(), "0000000000000000", doc)
    with pytest.raises(ConfigError, match=r"summary\.curves"):
        add_validation_to_report(
            store.uri(),
            out["id"],
            {**doc, "summary": {k: v for k, v in doc["summary"].items() if k != "curves"}},
        )


def test_public_url_of_a_local_store_opens(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.write_bytes("mixtures/x/report.html", b"<html>hi</html>")
    url = store.public_url("mixtures/x/report.html")
    assert url is not None and url.startswith("file:///")
    with urllib.request.urlopen(url) as f:
        assert f.read() == b"<html>hi</html>"
    assert Store("memory://am-test-public-url").public_url("a") is None  # cannot sign: no URL


@pytest.mark.slow
def test_public_url_of_an_s3_store_is_a_presigned_link_that_opens(s3_bucket: str) -> None:
    store = Store(s3_bucket + "/prefix")
    store.write_bytes("mixtures/x/report.html", b"<html>s3</html>")
    url = store.public_url("mixtures/x/report.html", expires=600)
    assert url is not None and url.startswith("http") and "Signature" in url
    with urllib.request.urlopen(url) as f:
        assert f.read() == b"<html>s3</html>"
    assert tasks.mixture_artifacts.browser_link(store, "mixtures/x/report.html", "report.html").startswith(
        "[report.html](http"
    )


def _eval_summaries(store: Store) -> list[str]:
    """Evaluation summaries (and per-question tables) of three checkpoints on two benchmarks:
    arc_easy with 4 choices per question but one of 2, piqa with 2; the last checkpoint diverged
    (no questions table)."""
    keys = []
    for s in STEPS:
        for i, b in enumerate(BENCHES):
            key = f"evals/fp{s}/{b}/d-h-v1.json"
            diverged = s == STEPS[-1] and b == "piqa"
            acc = float("nan") if diverged else 0.3 + 0.0004 * s * (i + 1)
            store.write_json(
                key,
                {
                    "checkpoint": f"checkpoint-{s}",
                    "step": s,
                    "benchmark": b,
                    "acc": acc,
                    "acc_norm": acc,
                    "acc_stderr": 0.01,
                    "acc_norm_stderr": 0.01,
                    "gold_ll": -1.0,
                    "gold_ll_stderr": 0.1,
                    "n": 4,
                    **({"diverged": True, "diverged_reason": "NaN weights"} if diverged else {}),
                },
            )
            if not diverged:
                n = [4, 4, 4, 2] if b == "arc_easy" else [2, 2, 2, 2]
                table = pd.DataFrame(
                    {
                        "doc_id": [f"q{j}" for j in range(4)],
                        "gold": 0,
                        "logprobs": [[-1.0] * k for k in n],
                        "choice_lengths": [[5] * k for k in n],
                    }
                )
                buf = io.BytesIO()
                table.to_parquet(buf, index=False)
                store.write_bytes(key.removesuffix(".json") + ".examples.parquet", buf.getvalue())
            keys.append(key)
    return keys


def test_evaluation_report_artifacts_are_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.reports
    from automixer_core.selection import SelectionConfig
    from tasks.reports import evaluation_table

    store = Store(tmp_path / "store")
    keys = _eval_summaries(store)
    evals = evaluation_table(store, keys)
    chance = evals.groupby("benchmark")["chance"].first().to_dict()
    assert chance == pytest.approx({"arc_easy": (3 / 4 + 1 / 2) / 4, "piqa": 0.5})  # mean of 1/choices
    assert evals["chance"].notna().all()  # the diverged row too: same questions

    artifacts = _Artifacts(monkeypatch, tasks.reports)
    out = tasks.reports.evaluation_report_task.fn(store.uri(), keys, SelectionConfig())
    assert store.exists(out["keys"]["evals.parquet"])
    rows = artifacts.tables["evaluation-table"]
    assert [r["step"] for r in rows] == ["100", "200", "300"]
    cells = [v for r in rows for k, v in r.items() if k != "step"]
    assert all(re.fullmatch(r"\d+\.\d%|–", v) for v in cells) and "–" in cells  # the diverged one
    text = artifacts.markdown["artifact-selection"]
    table_rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert len(table_rows) == len(BENCHES)
    for line in table_rows:
        cols = [c.strip() for c in line.strip("|").split(" | ")]
        assert re.fullmatch(r"\d+\.\d% ± 1\.0 pp", cols[3]) and re.fullmatch(r"\d+\.\d%", cols[4])
        why = cols[5]
        assert why.endswith(".") and len(why) < 100 and "=" not in why  # a short, whole sentence
    assert "diverged checkpoints excluded" in text  # piqa's last checkpoint
    image = re.findall(r"\(data:image/png;base64,([^)]+)\)", text)
    assert len(image) == 1 and len(base64.b64decode(image[0])) < 150_000
