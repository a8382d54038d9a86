"""What a remix will cost before it starts (``automixer plan``): the units still to run
(:func:`tasks.plan.plan_remix`) times a measured or given throughput, per number of workers.

Throughput per worker, in order of preference:

- **given** on the command line (``--score-docs-per-s``, ``--eval-s``);
- **from the store's history**: every evaluation summary records its wall time (``seconds``), so
  an evaluation of benchmark *b* costs the mean of *b*'s earlier ones on this store;
- **measured** here on the config's own model, documents and benchmarks: one scoring of a batch of
  corpus documents against real query vectors (the same engine and settings as the remix), and
  one evaluation of a few questions, timed; the estimate is then for machines like this one.

The model of the wall time on ``W`` scoring workers (work-pool or Dask mode): evaluations and
query vectors run one after the other in the remix's own process; shard scorings spread evenly over
the workers. So ``hours(W) = (evaluations + query vectors + scorings / W) / 3600``, each unit
also paying :data:`UNIT_OVERHEAD_S`; publishing (aggregation) is seconds and left out.

A shard scoring scores its documents against the K benchmarks whose artifact is that checkpoint,
all at once; a document costs s(K) = s(1) + (K − 1)·(s(K_m) − s(1))/(K_m − 1), affine in K
(one δᵀa per document and layer, then K contractions: DESIGN §2), from two measurements at K = 1
and K_m = every benchmark. Because s is affine, the scorings whose checkpoint is not yet chosen
cost the same however the benchmarks spread over them: their mean K is used.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from automixer_core.config import CorpusConfig, RunConfig
from automixer_core.store import Store
from tasks.plan import RemixPlan

#: Seconds a unit of work pays besides its compute on the embedded API of a 2-core machine (a task
#: run's state changes, store reads and writes): 64 evaluations of 20 questions on a 0.4M-parameter
#: proxy took 60 s where their forward passes took 6 s.
UNIT_OVERHEAD_S = 0.8


@dataclass
class Throughput:
    """Seconds per unit of work on one worker, and where each figure comes from."""

    #: benchmark → seconds of one evaluation (one checkpoint, the config's rows)
    eval_s: dict[str, float]
    #: seconds to score one corpus document against every benchmark of an artifact checkpoint
    score_doc_s: float
    #: seconds to build one benchmark's query vector at one checkpoint
    query_s: float
    source: dict[str, str] = field(default_factory=dict)
    #: seconds per document against one benchmark, and the K at which ``score_doc_s`` was
    #: measured; without both, every scoring costs ``score_doc_s`` whatever its K
    score_doc_s_k1: float | None = None
    score_k: int = 0

    def doc_seconds(self, k: float) -> float:
        """Seconds to score one document against ``k`` benchmarks at once (affine in k)."""
        if self.score_doc_s_k1 is None or self.score_k <= 1:
            return self.score_doc_s
        slope = (self.score_doc_s - self.score_doc_s_k1) / (self.score_k - 1)
        return max(0.0, self.score_doc_s_k1 + (k - 1) * slope)


@dataclass
class CostEstimate:
    """The plan's units with their seconds on one worker, and the wall hours on ``W`` workers."""

    evaluations: int
    queries: int
    scorings: int
    #: documents × artifact checkpoints: a document is scored once per checkpoint that scores it
    documents_to_score: int
    eval_hours: float
    query_hours: float
    #: scoring hours on one worker (divided by the number of workers)
    score_hours: float
    #: number of scoring workers → wall hours of the whole remix
    hours_by_workers: dict[int, float]
    throughput: Throughput
    upper_bound: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_cost(
    plan: RemixPlan,
    docs_per_shard: float,
    throughput: Throughput,
    workers: list[int],
    unit_overhead_s: float = UNIT_OVERHEAD_S,
) -> CostEstimate:
    """The plan's cost: units × seconds per unit, and wall hours per number of scoring workers.

    Args:
        plan: what is missing (:func:`tasks.plan.plan_remix`).
        docs_per_shard: mean documents per shard of the corpus (the scorings are per shard).
        throughput: seconds per unit on one worker.
        workers: the numbers of scoring workers to estimate for.
        unit_overhead_s: seconds every unit pays besides its compute (a Prefect task run's state
            changes, the store's reads and writes).
    """
    mean_eval = sum(throughput.eval_s.values()) / max(1, len(throughput.eval_s))
    eval_s = sum(
        throughput.eval_s.get(item.split(" @ ")[0], mean_eval) + unit_overhead_s
        for item in plan.evaluations_missing
    )
    query_s = len(plan.queries_missing) * (throughput.query_s + unit_overhead_s)
    documents = round(plan.scorings_missing * docs_per_shard)
    units = [
        (n, float(plan.benchmarks_by_checkpoint.get(c, throughput.score_k or 1)))
        for c, n in plan.scorings_missing_by_checkpoint.items()
    ]
    units.append((plan.scorings_moved, plan.moved_k or 1.0))
    rest = plan.scorings_missing - sum(n for n, _ in units)  # plans built by hand: K unknown
    units.append((max(0, rest), float(throughput.score_k or 1)))
    score_s = sum(n * docs_per_shard * throughput.doc_seconds(k) for n, k in units)
    score_s += plan.scorings_missing * unit_overhead_s
    serial = eval_s + query_s
    return CostEstimate(
        evaluations=len(plan.evaluations_missing),
        queries=len(plan.queries_missing),
        scorings=plan.scorings_missing,
        documents_to_score=documents,
        eval_hours=eval_s / 3600,
        query_hours=query_s / 3600,
        score_hours=score_s / 3600,
        hours_by_workers={w: (serial + score_s / w) / 3600 for w in workers},
        throughput=throughput,
        upper_bound=not plan.selection_known,
    )


def history_eval_seconds(config: RunConfig) -> dict[str, float]:
    """Mean wall seconds of the store's earlier evaluations, per benchmark (those that ran a model)."""
    store = Store(config.store)
    by_bench: dict[str, list[float]] = {}
    names = {s.name for s in config.benchmarks.specs()}
    for key in store.list("evals"):
        if not key.endswith(".json"):
            continue
        bench = key.split("/")[2] if key.count("/") >= 3 else ""
        if bench not in names:
            continue
        summary = store.read_json(key)
        if summary.get("seconds") and not summary.get("diverged"):
            by_bench.setdefault(bench, []).append(float(summary["seconds"]))
    return {b: sum(v) / len(v) for b, v in by_bench.items()}


def sample_texts(corpus: CorpusConfig, docs: int) -> list[str]:
    """``docs`` texts spread over the corpus: the first documents of evenly spaced shards, so the
    sample's lengths are the corpus's (shards are cut file by file, and files are often one
    domain each: the first shard alone can be twice the mean length), cut to ``max_doc_chars``."""
    from tasks.corpus import corpus_shards, shard_documents

    shards = corpus_shards(corpus)
    n = min(docs, len(shards))
    picks = sorted({round(j * (len(shards) - 1) / max(1, n - 1)) for j in range(n)})
    per = -(-docs // max(1, len(picks)))  # ceil
    texts: list[str] = []
    for i in picks:
        for k, d in enumerate(shard_documents(corpus, shards[i])):
            if k >= per:
                break
            texts.append(d.text[: corpus.max_doc_chars])
    return texts[:docs]


def measure_throughput(
    config: RunConfig, checkpoint: dict[str, Any], docs: int = 32, questions: int = 8
) -> Throughput:
    """Time the real engine on this machine: ``docs`` corpus documents scored against every
    benchmark's query vector (built from ``questions`` questions each), and one evaluation of
    ``questions`` questions of each benchmark lacking history, at ``checkpoint``.

    The model is loaded once (not timed). Seconds per evaluation scale linearly with the config's
    rows (``eval_limit``); per query vector with ``query_limit`` rows plus its share of the Hessian
    sample. An evaluation also pays its share of loading the checkpoint (once per checkpoint for
    all its benchmarks), timed here too.
    """
    from automixer_core.checkpoints import load_checkpoint
    from automixer_core.evaluation import evaluate_benchmark, gold_pairs
    from automixer_core.influence import build_query_vectors, score_documents
    from tasks.evaluate import cached_benchmark
    from tasks.models import checkpoint_ref, exclusive_model, resolve_device

    assert config.corpus is not None
    specs = config.benchmarks.specs()
    benches = {s.name: cached_benchmark(s) for s in specs}
    texts = sample_texts(config.corpus, docs)
    history = history_eval_seconds(config)
    eval_s = dict(history)
    source = {"eval": "store history" if history else "measured"}
    device = resolve_device(config.evaluation.device)
    t0 = time.perf_counter()
    load_checkpoint(checkpoint_ref(checkpoint), device=device)  # what a remix pays once per checkpoint
    load_s = time.perf_counter() - t0
    with exclusive_model(checkpoint, device) as (model, tokenizer):
        tokens = [tokenizer(t)["input_ids"] for t in texts]
        queries = {name: gold_pairs(tokenizer, b.query_instances[:questions]) for name, b in benches.items()}
        # Warm-up, not timed: first calls pay for hook set-up, allocator growth and lazy imports.
        first = next(iter(queries))
        warm = build_query_vectors(
            model, {first: queries[first][:1]}, config.influence, hessian_docs=tokens[:2]
        )
        score_documents(model, ((str(i), t) for i, t in enumerate(tokens[:2])), warm, config.influence)
        t0 = time.perf_counter()
        vectors = build_query_vectors(model, queries, config.influence, hessian_docs=tokens)
        built_s = time.perf_counter() - t0
        score_documents(model, ((str(i), t) for i, t in enumerate(tokens[:2])), vectors, config.influence)
        t0 = time.perf_counter()
        score_documents(model, ((str(i), t) for i, t in enumerate(tokens)), vectors, config.influence)
        score_doc_s = (time.perf_counter() - t0) / max(1, len(tokens))
        score_doc_s_k1 = None
        if len(vectors.names) > 1:  # and against one benchmark: a scoring's cost is affine in its K
            one = vectors.select(vectors.names[:1])
            t0 = time.perf_counter()
            score_documents(model, ((str(i), t) for i, t in enumerate(tokens)), one, config.influence)
            score_doc_s_k1 = (time.perf_counter() - t0) / max(1, len(tokens))
        for name, bench in benches.items():
            if name in eval_s:
                continue
            rows = bench.eval_instances[:questions]
            evaluate_benchmark(
                model, tokenizer, rows[:1], config=config.evaluation.model_copy(update={"limit": None})
            )
            t0 = time.perf_counter()
            evaluate_benchmark(
                model, tokenizer, rows, config=config.evaluation.model_copy(update={"limit": None})
            )
            per_row = (time.perf_counter() - t0) / max(1, len(rows))
            eval_s[name] = load_s / len(benches) + per_row * min(
                config.benchmarks.eval_limit or len(bench.eval_instances), len(bench.eval_instances)
            )
            source["eval"] = "measured" if not history else "store history, measured for the rest"
    # One query vector: its questions' backward passes, scaled to query_limit rows, plus its share
    # of the Hessian pass (measured together above on `questions` rows per benchmark).
    per_question = built_s / max(1, len(benches) * questions + len(tokens))
    query_rows = config.benchmarks.query_limit or questions
    query_s = per_question * (query_rows + config.influence.hessian_samples / max(1, len(benches)))
    source.update(
        score=f"measured ({len(tokens)} documents, K = 1 and {len(vectors.names)})", query="measured"
    )
    return Throughput(
        eval_s=eval_s,
        score_doc_s=score_doc_s,
        query_s=query_s,
        source=source,
        score_doc_s_k1=score_doc_s_k1,
        score_k=len(vectors.names),
    )
