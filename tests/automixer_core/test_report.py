"""The mixture report: one figure per section that has data, token shares computed from the
membership, plain notes, escaped sample documents, relative links, no references the reader lacks,
and a validation section that can be filled in later."""

from __future__ import annotations

import base64
import html
import io
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from automixer_core.aggregation import AggregationConfig, aggregate
from automixer_core.errors import AutoMixerError
from automixer_core.mixture import Mixture, mixture_from_aggregation
from automixer_core.report import SampleDocument, render_report, with_validation
from automixer_core.report.common import note_sentence, replace_region
from automixer_core.report.samples import pick_samples
from automixer_core.report.validation import mixture_candidates
from automixer_core.selection import select_artifacts
from automixer_core.validation.summary import summarize_validation

BENCHES = ["arc_easy", "piqa"]
STEPS = [100, 200, 300]


def _scores(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(n)],
            "n_tokens": rng.integers(5, 400, n),
            "domain": rng.choice(["web", "howto", "code"], n),
            **{f"score__{b}": rng.normal(0.002, 0.01, n) for b in BENCHES},
        }
    )


def _evals() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "checkpoint": f"checkpoint-{s}",
                "step": s,
                "benchmark": b,
                "acc": 0.3 + 0.0005 * s * (i + 1),
                "acc_norm": 0.3 + 0.0005 * s * (i + 1),
                "acc_stderr": 0.02,
                "acc_norm_stderr": 0.02,
                "n": 100,
                "chance": 0.25 if b == "arc_easy" else 0.5,
            }
            for s in STEPS
            for i, b in enumerate(BENCHES)
        ]
    )


def _mixture(notes: list[str] | None = None) -> tuple[Mixture, Any, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    scores = _scores()
    evals = _evals()
    selection = select_artifacts(evals)
    agg = aggregate(
        scores,
        {r.benchmark: r.step for r in selection.itertuples()},
        AggregationConfig(bootstrap=20, min_weight=0.01),
    )
    provenance = {
        "checkpoints": [{"name": f"checkpoint-{s}", "step": s, "fingerprint": f"f{s}"} for s in STEPS],
        "artifacts": [
            {
                "benchmark": r.benchmark,
                "checkpoint": r.checkpoint,
                "step": int(r.step),
                "score": float(r.score),
            }
            for r in selection.itertuples()
        ],
        "estimator": "datainf",
        "layers": "embed_head",
        "alpha": {},
        "config_hash": "cfg",
    }
    mixture = mixture_from_aggregation(agg, provenance, notes=notes)
    membership = agg.membership.merge(scores.drop(columns=["domain", "n_tokens"]), on="doc_id")
    return mixture, agg, membership, evals, selection


def _images(page: str) -> dict[str, bytes]:
    found = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">', page)
    return {alt: base64.b64decode(data) for alt, data in found}


def _table_after(page: str, heading_id: str) -> list[list[str]]:
    """The cells (tags stripped, unescaped) of the first table after ``<h2 id='heading_id'>``."""
    start = page.index(f"<h2 id='{heading_id}'>")
    chunk = page[start : page.index("</table>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", chunk, flags=re.S)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c))
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S)
        ]
        for r in rows
    ]


def test_every_figure_is_one_png() -> None:
    mixture, agg, membership, evals, selection = _mixture()
    page = render_report(mixture, agg, membership=membership, evals=evals, selection=selection, exports=[])
    images = _images(page)
    assert len(re.findall(r"<img ", page)) == len(images) == 7
    assert set(images) == {
        "capability emergence",
        "group weights",
        "domain weights",
        "group by domain heatmap",
        "benchmark by group heatmap",
        "score distributions",
        "joint score against document length",
    }
    for png in images.values():
        img = Image.open(io.BytesIO(png))
        assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 150
        img.load()  # decodes the whole image
    # without a membership table there is nothing to draw the heatmaps and score plots from
    assert set(_images(render_report(mixture))) == {"group weights", "domain weights"}


def test_token_share_columns_are_tokens_over_all_scored_tokens() -> None:
    mixture, agg, membership, *_ = _mixture()
    page = render_report(mixture, agg, membership=membership)
    total = 0
    per_group: dict[str, int] = {}
    per_domain: dict[str, int] = {}
    for row in membership.merge(
        _scores()[["doc_id", "domain"]], on="doc_id", suffixes=("", "_")
    ).itertuples():
        total += int(row.n_tokens)
        per_group[row.group] = per_group.get(row.group, 0) + int(row.n_tokens)
        per_domain[row.domain] = per_domain.get(row.domain, 0) + int(row.n_tokens)
    for heading, expected in (("weights", per_group), ("domains", per_domain)):
        header, *rows = _table_after(page, heading)
        col = header.index("corpus token share (% of scored tokens)")
        shown = {r[0]: r[col] for r in rows}
        assert shown == {name: f"{100 * t / total:.1f}%" for name, t in expected.items()}
        weights = [float(r[header.index("weight (% of training tokens)")].rstrip("%")) for r in rows]
        assert weights == sorted(weights, reverse=True)  # largest weight first
    # every weight cell is a percentage with its interval in percent
    header, *rows = _table_after(page, "weights")
    assert all(re.fullmatch(r"\d+\.\d%", r[1]) for r in rows)
    assert all(re.fullmatch(r"\d+\.\d–\d+\.\d%", r[2]) for r in rows)


def test_notes_are_plain_sentences_in_a_list() -> None:
    notes = ["weights: group(s) ['A', 'B'] floored at min_weight=0.01", "shrunk: domain x is gone"]
    mixture, agg, _membership, *_ = _mixture(notes=notes)
    page = render_report(mixture, agg)
    section = page[page.index("<h2 id='notes'>") : page.index("</ul>", page.index("<h2 id='notes'>"))]
    items = re.findall(r"<li>(.*?)</li>", section)
    assert len(items) == len(mixture.notes)
    assert "Weights: group(s) A, B floored at min_weight=0.01." in items
    assert "Shrunk: domain x is gone." in items
    assert not any("[" in i or "'" in html.unescape(i) for i in items)
    assert note_sentence("alpha: benchmark(s) [] have step 0") == "Alpha: benchmark(s) none have step 0."


def test_sample_documents_are_escaped_and_cut() -> None:
    mixture, agg, membership, *_ = _mixture()
    group = mixture.groups[0].name
    evil = "<script>alert('x')</script> & more"
    samples = {group: [SampleDocument("d<1>", group, evil, 12, 0.5, domain="web&co")]}
    page = render_report(mixture, agg, samples=samples)
    assert "<script>" not in page
    assert html.escape(evil) in page and "d&lt;1&gt;" in page and "web&amp;co" in page
    picked = pick_samples(membership, k=3, seed=0)
    counts = membership["group"].value_counts()
    assert picked.groupby("group").size().to_dict() == {g: min(3, int(n)) for g, n in counts.items()}
    assert picked["doc_id"].is_unique and set(picked["doc_id"]) <= set(membership["doc_id"])


def test_links_are_relative_and_no_references_the_reader_lacks() -> None:
    mixture, agg, membership, evals, selection = _mixture()
    exports = ["megatron_data_blend.txt", "hf_interleave.json"]
    page = render_report(
        mixture, agg, membership=membership, evals=evals, selection=selection, exports=exports
    )
    hrefs = re.findall(r'href="([^"]+)"', page)
    for name in ["mixture.json", "membership.parquet", *(f"exports/{e}" for e in exports)]:
        assert name in hrefs
    assert not [h for h in hrefs if "://" in h or h.startswith("/")]
    text = re.sub(r"data:image/png;base64,[^\"]+", "", page)
    assert "DESIGN" not in text and "§" not in text
    assert "membership.parquet</a> holds one row per scored document" in page
    assert "density (mean influence per token, arbitrary units)" in page


def test_capability_table_flags_noise_in_words() -> None:
    mixture, agg, _membership, evals, selection = _mixture()
    near = evals.assign(acc_norm_stderr=0.5)  # everything within one (huge) standard error
    page = render_report(mixture, agg, evals=near, selection=select_artifacts(near))
    header, *rows = _table_after(page, "capability")
    verdict = header.index("above noise?")
    assert {r[0]: r[verdict] for r in rows} == {
        "arc_easy": "within noise: within 1 s.e. of chance, within 1 s.e. of another checkpoint",
        "piqa": "within noise: within 1 s.e. of chance, within 1 s.e. of another checkpoint",
    }
    assert "are within noise" in page
    clear = render_report(mixture, agg, evals=evals, selection=selection)
    header, *rows = _table_after(clear, "capability")
    assert [r[header.index("above noise?")] for r in rows] == ["yes", "yes"]
    assert [r[header.index("chance")] for r in rows] == ["25.0%", "50.0%"]
    assert all(re.fullmatch(r"\d+\.\d% ± 2\.0 pp", r[header.index("acc_norm ± 1 s.e.")]) for r in rows)


def _validation(mixture_id: str) -> dict[str, Any]:
    """A validation document as flows/validate.py builds it, from made-up per-question results:
    the mixture's candidate answers 70% of 40 questions right, uniform 50%."""
    rng = np.random.default_rng(0)
    runs, per_question = [], {}
    for cand, p in (("mixture", 0.7), ("uniform", 0.5)):
        for seed in (0, 1):
            steps = []
            for step, tokens in ((10, 1000), (20, 2000)):
                metrics = {
                    b: {"acc": p, "acc_norm": p * step / 20, "gold_ll": -1.0, "margin": 0.1} for b in BENCHES
                }
                steps.append({"step": step, "tokens_seen": tokens, "loss": 3.0, "metrics": metrics})
            runs.append({"candidate": cand, "seed": seed, "steps": steps})
            for b in BENCHES:
                right = (rng.random(40) < p).astype(float)
                per_question[(cand, seed, b)] = pd.DataFrame(
                    {"acc": right, "acc_norm": right, "gold_ll": -right, "margin": right - 0.5},
                    index=pd.Index([f"q{i}" for i in range(40)], name="doc_id"),
                )
    summary = summarize_validation(runs, per_question, ["uniform"], n_boot=200)
    return {
        "id": "val123",
        "config": {"ci": 0.9},
        "tokens_per_run": 2000,
        "target_summary": "64-wide, 2 layers",
        "candidates_info": [
            {"name": "mixture", "weights": {"web": 1.0}, "source": f"mixture {mixture_id}"},
            {"name": "uniform", "weights": {"web": 1.0}, "source": "uniform over domains"},
        ],
        "summary": summary,
    }


def test_validation_regions_are_filled_and_replaced() -> None:
    mixture, agg, *_ = _mixture()
    page = render_report(mixture, agg)
    assert "Not validated yet" in page and "<h2 id='validation'>Validation</h2><p>None yet.</p>" in page
    doc = _validation(mixture.id)
    filled = with_validation(page, doc, mixture.id)
    assert "Not validated yet" not in filled and "None yet" not in filled
    assert "<b>Validated</b>" in filled and "mixture − uniform" in filled
    assert 'href="../../validations/val123/report.html"' in filled
    assert len(_images(filled)) == len(_images(page)) + 1  # the learning curves
    _header, *rows = _table_after(filled, "validation")
    assert [r[0] for r in rows] == ["mixture ★", "uniform"]
    assert all(re.fullmatch(r"\d+\.\d% ± \d+\.\d pp", r[1]) for r in rows)  # score ± seed std
    diff = next(
        d for d in doc["summary"]["differences"] if d["benchmark"] == "mean" and d["metric"] == "acc_norm"
    )
    assert f"{100 * diff['delta']:+.1f} pp" in filled
    other = {"candidates_info": [{"name": "g", "source": f"mixture {mixture.id}, by group"}]}
    other["candidates_info"].append({"name": "o", "source": f"mixture {mixture.id}0"})  # another id
    assert mixture_candidates(other, mixture.id) == ["g"]
    # a second validation replaces the first: one section, one status line
    again = with_validation(filled, {**doc, "id": "val456"}, mixture.id)
    assert again.count("<h2 id='validation'>") == 1 and "val123" not in again and "val456" in again
    # a report written before the regions existed gets the section appended
    old = page.replace("<!-- validation:begin -->", "").replace("<!-- validation:end -->", "")
    assert "val123" in with_validation(old, doc, mixture.id)
    with pytest.raises(AutoMixerError, match="no 'nope' region"):
        replace_region(page, "nope", "x")
