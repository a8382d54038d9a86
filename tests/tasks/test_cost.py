"""The cost estimate of ``automixer plan``: units × seconds per unit, computed by hand."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from automixer_core.config import CorpusConfig
from tasks.cost import Throughput, estimate_cost, sample_texts
from tasks.plan import RemixPlan


def _plan(known: bool = True) -> RemixPlan:
    return RemixPlan(
        checkpoints=3,
        benchmarks=2,
        shards=10,
        documents=500,
        nothing_new=False,
        latest_mixture=None,
        evaluations_total=6,
        evaluations_missing=["arc_easy @ c3", "piqa @ c3"],
        selection_known=known,
        queries_total=2,
        queries_missing=["piqa @ c3"],
        scorings_total=20,
        scorings_missing=10,
    )


def test_estimate_is_units_times_seconds_with_scoring_spread_over_workers() -> None:
    tp = Throughput(eval_s={"arc_easy": 30.0, "piqa": 50.0}, score_doc_s=0.2, query_s=100.0)
    cost = estimate_cost(_plan(), docs_per_shard=50.0, throughput=tp, workers=[1, 4], unit_overhead_s=1.0)
    evals = (30 + 1) + (50 + 1)  # seconds: each benchmark its own figure, plus the overhead
    queries = 1 * (100 + 1)
    scoring = 10 * 50 * 0.2 + 10 * 1  # 500 documents, 10 units
    assert cost.documents_to_score == 500 and cost.evaluations == 2 and cost.queries == 1
    assert cost.eval_hours * 3600 == pytest.approx(evals)
    assert cost.query_hours * 3600 == pytest.approx(queries)
    assert cost.score_hours * 3600 == pytest.approx(scoring)
    assert cost.hours_by_workers[1] * 3600 == pytest.approx(evals + queries + scoring)
    assert cost.hours_by_workers[4] * 3600 == pytest.approx(evals + queries + scoring / 4)
    assert not cost.upper_bound


def test_an_unknown_benchmark_costs_the_mean_and_an_unknown_selection_is_a_bound() -> None:
    tp = Throughput(eval_s={"arc_easy": 30.0}, score_doc_s=0.0, query_s=0.0)
    plan = _plan(known=False)
    cost = estimate_cost(plan, docs_per_shard=50.0, throughput=tp, workers=[1], unit_overhead_s=0.0)
    assert cost.eval_hours * 3600 == pytest.approx(60.0)  # piqa has no figure: the mean (30 s)
    assert cost.upper_bound


def test_a_scoring_costs_by_the_number_of_benchmarks_it_scores_at_once() -> None:
    """s(K) is affine between the two measurements (K = 1 and K = 8); the scorings an unknown
    choice adds cost their mean K, which is exact for an affine s however the benchmarks spread."""
    tp = Throughput(eval_s={}, score_doc_s=0.5, query_s=0.0, score_doc_s_k1=0.15, score_k=8)
    assert tp.doc_seconds(1) == pytest.approx(0.15)
    assert tp.doc_seconds(8) == pytest.approx(0.5)
    assert tp.doc_seconds(3) == pytest.approx(0.15 + 2 * 0.05)
    plan = _plan()
    plan.scorings_missing = 10 + 4 + 6
    plan.scorings_missing_by_checkpoint = {"c1": 10, "c2": 4}
    plan.benchmarks_by_checkpoint = {"c1": 1, "c2": 7}
    plan.scorings_moved, plan.moved_k = 6, 8 / 3  # 8 benchmarks over at most 3 new checkpoints
    cost = estimate_cost(plan, docs_per_shard=50.0, throughput=tp, workers=[1], unit_overhead_s=0.0)
    want = 50 * (10 * 0.15 + 4 * (0.15 + 6 * 0.05) + 6 * (0.15 + (8 / 3 - 1) * 0.05))
    assert cost.score_hours * 3600 == pytest.approx(want)
    # the same 6 scorings, known: the benchmarks spread 1, 2, 5 over 3 checkpoints of 2 shards each
    known = _plan()
    known.scorings_missing = 10 + 4 + 6
    known.scorings_missing_by_checkpoint = {"c1": 10, "c2": 4, "n1": 2, "n2": 2, "n3": 2}
    known.benchmarks_by_checkpoint = {"c1": 1, "c2": 7, "n1": 1, "n2": 2, "n3": 5}
    assert estimate_cost(known, 50.0, tp, [1], 0.0).score_hours == pytest.approx(cost.score_hours)
    # a single measured figure (given on the command line) costs every K the same
    flat = Throughput(eval_s={}, score_doc_s=0.5, query_s=0.0)
    assert estimate_cost(plan, 50.0, flat, [1], 0.0).score_hours * 3600 == pytest.approx(50 * 20 * 0.5)


def test_the_throughput_sample_spans_the_corpus_not_its_first_shard(tmp_path: Path) -> None:
    """Files sorted by domain with very different lengths: a sample of the first shard would be
    all one domain; the spread sample takes documents from every file, evenly."""
    lengths = {"a_long": 400, "b_mid": 100, "c_short": 10, "d_tiny": 2}
    for name, words in lengths.items():
        rows = [{"id": f"{name}-{i}", "text": " ".join([name] * words)} for i in range(12)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = CorpusConfig(uri=str(tmp_path), shard_docs=4, max_doc_chars=1000)
    texts = sample_texts(corpus, 8)
    assert len(texts) == 8
    by_file = Counter(t.split(" ")[0] for t in texts)
    assert by_file == {name: 2 for name in lengths}  # 12 shards, 8 picked evenly: 2 from each file
    assert all(len(t) <= 1000 for t in texts)  # cut as scored
    assert len(sample_texts(corpus, 100)) == 48  # more asked than the corpus holds: every document once
