"""What a remix would run, read from the store without computing anything (``remix --dry-run``).

The remix's units are content-addressed (:mod:`tasks.keys`), so what is missing is the set of keys
the store lacks: evaluations (checkpoint × benchmark), query vectors (benchmark at its artifact
checkpoint) and shard scorings (artifact checkpoint × shard). The artifact checkpoints come from
the evaluations; while some are missing the choice is not known yet, and the query vectors and
scorings are given as an upper bound (every benchmark choosing a checkpoint not yet scored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from automixer_core.benchmarks import benchmark_data_digest
from automixer_core.checkpoints import discover_checkpoints
from automixer_core.config import RunConfig
from automixer_core.errors import ConfigError
from automixer_core.selection import select_artifacts
from automixer_core.store import Store
from tasks.checkpoints import checkpoint_records
from tasks.corpus import corpus_shards
from tasks.evaluate import cached_benchmark, eval_config_hash
from tasks.influence import corpus_hessian, query_outputs
from tasks.keys import eval_key, inputs_digest, score_key
from tasks.mixture_inputs import latest_mixture
from tasks.reports import evaluation_table


@dataclass
class RemixPlan:
    """What a remix of a config would run now; counts of units, and the missing ones by name."""

    checkpoints: int
    benchmarks: int
    shards: int
    documents: int
    #: the latest mixture was made from these very inputs: the remix would end at once
    nothing_new: bool
    latest_mixture: str | None
    evaluations_total: int
    #: ``"<benchmark> @ <checkpoint>"`` of each evaluation the store lacks
    evaluations_missing: list[str]
    #: whether every evaluation exists, so the artifact checkpoints (and the rest) are known
    selection_known: bool
    #: benchmark → its artifact checkpoint(s) among the evaluations in the store (provisional while
    #: some are missing)
    artifacts: dict[str, list[str]] = field(default_factory=dict)
    queries_total: int = 0
    #: ``"<benchmark> @ <checkpoint>"`` of each query vector the store lacks (upper bound if not known)
    queries_missing: list[str] = field(default_factory=list)
    #: (artifact checkpoint, shard) scorings: total, and how many lack some benchmark's scores
    scorings_total: int = 0
    scorings_missing: int = 0
    #: shard scorings missing per artifact checkpoint
    scorings_missing_by_checkpoint: dict[str, int] = field(default_factory=dict)
    #: benchmarks scored together per artifact checkpoint (the K of its query vectors); the scorings
    #: an unknown choice may add (``scorings_moved``) have on average ``moved_k`` each
    benchmarks_by_checkpoint: dict[str, int] = field(default_factory=dict)
    scorings_moved: int = 0
    moved_k: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_remix(config: RunConfig) -> RemixPlan:
    """The units of work a remix of ``config`` would run, from the store's state; computes nothing
    (reads checkpoint metadata, benchmark files, corpus shard digests and store keys).

    Raises:
        ConfigError: the config has no corpus section. Errors of discovery or benchmark loading as
            the remix would raise them.
    """
    if config.corpus is None:
        raise ConfigError(
            "The run config has no corpus section", fix="add corpus: {uri: <folder or s3:// prefix>}"
        )
    store = Store(config.store)
    found = discover_checkpoints(config.checkpoints.uri, revision=config.checkpoints.revision)
    checkpoints = checkpoint_records(found)
    specs = config.benchmarks.specs()
    benches = {s.name: cached_benchmark(s) for s in specs}
    shards = corpus_shards(config.corpus)
    digest = inputs_digest(config, checkpoints, [benchmark_data_digest(s) for s in specs], shards)
    latest = latest_mixture(config.store)
    nothing_new = latest is not None and getattr(latest.provenance, "inputs_digest", None) == digest
    eval_hash = eval_config_hash(config.evaluation)
    keys = {
        (c["name"], name): eval_key(c["fingerprint"], name, b.digest, eval_hash)
        for c in checkpoints
        for name, b in benches.items()
    }
    missing_evals = [f"{b} @ {c}" for (c, b), k in keys.items() if not store.exists(k)]
    plan = RemixPlan(
        checkpoints=len(checkpoints),
        benchmarks=len(specs),
        shards=len(shards),
        documents=sum(s["stop"] - s["start"] for s in shards),
        nothing_new=nothing_new,
        latest_mixture=latest.id if latest is not None else None,
        evaluations_total=len(keys),
        evaluations_missing=[] if nothing_new else missing_evals,
        selection_known=not missing_evals,
        notes=[f"skipped checkpoint {where}: {reason}" for where, reason in found.skipped],
    )
    if nothing_new:
        plan.notes.append(
            f"nothing new since mixture {latest.id if latest else ''}: the remix would end at once"
        )
    if config.corpus.target_width is not None:
        plan.notes.append(
            "corpus.target_width: shards are scored in rounds until every weight interval is narrow "
            "enough; the shard scorings are an upper bound (every shard)"
        )
    present = [k for k in keys.values() if store.exists(k)]
    if present:  # the artifact choice of the evaluations there are (all of them: the real one)
        chosen = select_artifacts(evaluation_table(store, present), config.selection)
        _count_missing(plan, config, chosen, checkpoints, benches, shards, store)
    if missing_evals:
        # Not known until evaluated: each benchmark may move to a checkpoint not yet evaluated,
        # whose query vectors and scorings then all run (an upper bound on top of the rest).
        new = {item.split(" @ ")[1] for item in missing_evals}
        plan.queries_total += len(specs)
        plan.queries_missing += [f"{name} @ (chosen after evaluation)" for name in benches]
        moved = min(len(specs), len(new)) * len(shards)
        plan.scorings_total += moved
        plan.scorings_missing += moved
        plan.scorings_moved = moved
        plan.moved_k = len(specs) / max(1, min(len(specs), len(new)))
        plan.notes.append(
            f"the artifact checkpoints are chosen from the evaluations, {len(missing_evals)} of which are "
            f"missing (checkpoints {sorted(new)}): the query vectors and shard scorings are an upper bound "
            "(every benchmark moving to one of those checkpoints)"
        )
    return plan


def _count_missing(
    plan: RemixPlan,
    config: RunConfig,
    chosen: Any,
    checkpoints: list[dict[str, Any]],
    benches: dict[str, Any],
    shards: list[dict[str, Any]],
    store: Store,
) -> None:
    """Add to ``plan`` the query vectors and shard scorings of the artifact choice ``chosen`` that
    the store lacks."""
    assert config.corpus is not None
    by_name = {c["name"]: c for c in checkpoints}
    per_checkpoint: dict[str, list[str]] = {}
    for row in chosen.itertuples():
        per_checkpoint.setdefault(str(row.checkpoint), []).append(str(row.benchmark))
        plan.artifacts.setdefault(str(row.benchmark), []).append(str(row.checkpoint))
    hessian = corpus_hessian(shards, config.influence)
    for name, bench_names in sorted(per_checkpoint.items(), key=lambda kv: by_name[kv[0]]["step"]):
        fp = by_name[name]["fingerprint"]
        hashes, keys = query_outputs(
            by_name[name], {b: benches[b] for b in bench_names}, config.influence, config.corpus, hessian
        )
        plan.queries_total += len(hashes)
        plan.queries_missing += [f"{b} @ {name}" for b, k in keys.items() if not store.exists(k)]
        missing = sum(
            any(not store.exists(score_key(fp, b, h, s["digest"])) for b, h in hashes.items()) for s in shards
        )
        plan.scorings_total += len(shards)
        plan.scorings_missing += missing
        plan.scorings_missing_by_checkpoint[name] = missing
        plan.benchmarks_by_checkpoint[name] = len(bench_names)
