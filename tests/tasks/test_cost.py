"""The cost estimate of ``automixer plan``: units × seconds per unit, computed by hand."""

from __future__ import annotations

import pytest

from tasks.cost import Throughput, estimate_cost
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
