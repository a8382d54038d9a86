"""Flow ``validate``: candidates → shared tokenizer → one target run per (candidate, seed) →
paired comparisons → ``validations/<id>/`` (DESIGN §6)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.task_runners import ThreadPoolTaskRunner

import automixer_core
from automixer_core.benchmarks import BenchmarkSpec, benchmark_data_digest
from automixer_core.config import RunConfig
from automixer_core.errors import ConfigError, ExecutionError
from automixer_core.mixture import Mixture
from automixer_core.proxy import ProxyConfig
from automixer_core.published import read_published_mixture
from automixer_core.store import Store
from automixer_core.validation.candidates import (
    Candidate,
    mixture_weights,
    natural_weights,
    temperature_weights,
    uniform_weights,
)
from automixer_core.validation.report import render_validation
from automixer_core.validation.stats import MEAN
from automixer_core.validation.summary import summarize_validation
from flows.remix import remix_flow
from flows.scoring import dask_map, worker_config
from tasks.corpus import shards_task
from tasks.validation import prepare_task, read_final_questions, train_candidate_task, unit_digest

VALIDATION_LATEST = "validations/latest.json"


def _mixture_candidate(name: str, mixture: Mixture, uri: str, domains: list[str]) -> Candidate:
    if not mixture.domains:
        raise ConfigError(
            f"Mixture {mixture.id} ({uri}) has no per-domain weights",
            expected="a mixture of a corpus labelled by domain (validation samples the corpus by domain)",
            fix="label the corpus by domain (a domain field, or one folder per domain)",
        )
    weights = mixture_weights({d.name: d.weight for d in mixture.domains}, domains, uri)
    return Candidate(name, weights, source=f"mixture {mixture.id}", meta={"mixture_uri": uri})


def _shipped_specs(specs: list[BenchmarkSpec]) -> list[BenchmarkSpec]:
    """Benchmark specs with local paths made absolute, for workers running in other folders."""

    def absolute(p: Path | None) -> Path | None:
        return None if p is None else p.resolve()

    return [
        s.model_copy(
            update={
                "data_dir": absolute(s.data_dir),
                "path": absolute(s.path),
                "custom_yaml": absolute(s.custom_yaml),
            }
        )
        for s in specs
    ]


def _train_units(
    config: RunConfig,
    units: list[tuple[Candidate, int, str]],
    target: ProxyConfig,
    specs: list[BenchmarkSpec],
    on_done: Callable[[], None],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Train every (candidate, seed) unit where ``execution.mode`` says: in this process (``local``;
    ``workpool`` too, for now: the work pool fan-out covers scoring only) or on Dask (``dask``, one
    ``GPU`` resource per unit). Returns the results in order and the failures in words (every other
    unit is awaited first, and its results are kept in the store)."""
    assert config.corpus is not None
    if config.execution.mode == "dask":
        shipped = worker_config(config)
        assert shipped.corpus is not None
        params = [
            {
                "store_uri": shipped.store,
                "digest": digest,
                "candidate": c.name,
                "weights": c.weights,
                "seed": seed,
                "target": target,
                "corpus_uri": shipped.corpus.uri,
                "benchmarks": _shipped_specs(specs),
                "evaluation": config.evaluation,
            }
            for c, seed, digest in units
        ]
        return dask_map(config, train_candidate_task, params, on_done), []
    if config.execution.mode == "workpool":
        get_run_logger().warning(
            "validate trains its targets in this process: the work pool fan-out covers scoring"
        )
    futures = [
        train_candidate_task.submit(
            config.store, digest, c.name, c.weights, seed, target, config.corpus.uri, specs, config.evaluation
        )
        for c, seed, digest in units
    ]
    results = []
    failed = []
    for (c, seed, _), f in zip(units, futures, strict=True):
        try:
            results.append(f.result())
        except Exception as exc:  # every other unit is awaited and kept before this is reported
            failed.append(f"{c.name} seed {seed} ({type(exc).__name__}: {exc})")
        on_done()
    return results, failed


@flow(name="validate", task_runner=ThreadPoolTaskRunner(max_workers=1))  # type: ignore[arg-type]
def validate_flow(config: RunConfig, mixture: str | None = None) -> dict[str, Any]:
    """Train target proxies on every candidate of ``config.validation`` and compare them.

    Args:
        config: the run config (its ``validation`` section says what to train).
        mixture: the URI of a published mixture.json to validate; default: the remix of ``config``.

    Returns ``{"id", "uri", "report", "counts": {"remixes", "targets_trained"}, "headline"}``.
    """
    log = get_run_logger()
    val = config.validation
    if config.corpus is None:
        raise ConfigError("The run config has no corpus section", fix="add corpus: {uri: <folder>}")
    store = Store(config.store)
    store.check_writable()
    shards = shards_task(config.corpus)
    corpus_digest = hashlib.sha256("".join(s["digest"] for s in shards).encode()).hexdigest()[:16]
    prep = prepare_task(config.store, config.corpus.uri, corpus_digest, val.target)
    domains = sorted(prep["tokens"])
    log.info("Corpus domains and tokens: %s", prep["tokens"])

    candidates: list[Candidate] = []
    remixes = 0
    for kind in val.candidates:
        if kind == "uniform":
            candidates.append(Candidate(kind, uniform_weights(domains), "equal weight per domain"))
        elif kind == "natural":
            candidates.append(
                Candidate(kind, natural_weights(prep["tokens"]), "each domain's share of the tokens")
            )
        elif kind == "temperature":
            candidates.append(
                Candidate(
                    kind,
                    temperature_weights(prep["tokens"], val.temperature),
                    f"token shares^(1/τ), τ = {val.temperature}",
                )
            )
        elif kind == "mixture" and mixture is not None:
            candidates.append(_mixture_candidate(kind, read_published_mixture(mixture), mixture, domains))
        else:  # mixture (remix of the config), final, all: the remix builds them
            strategy = {"mixture": config.selection.strategy, "final": "final", "all": "all"}[kind]
            remix_cfg = config.model_copy(
                update={"selection": config.selection.model_copy(update={"strategy": strategy})}
            )
            out = remix_flow(remix_cfg)
            remixes += 1
            candidates.append(
                _mixture_candidate(kind, read_published_mixture(out["uri"]), out["uri"], domains)
            )

    specs = [
        s.model_copy(update={"eval_limit": val.eval_limit or s.eval_limit}) for s in config.benchmarks.specs()
    ]
    bench_digests = [benchmark_data_digest(s) for s in specs]
    target = val.target.model_copy(update={"tokenizer": prep["tokenizer"]})
    evaluation = config.evaluation
    units = [
        (
            c,
            seed,
            unit_digest(
                c.digest, seed, target, corpus_digest, bench_digests, evaluation, prep["tokenizer_digest"]
            ),
        )
        for c in candidates
        for seed in range(val.seeds)
    ]
    progress = cast(
        UUID, create_progress_artifact(0.0, key="validate-targets", description="target runs done")
    )
    done = [0]

    def on_done() -> None:
        done[0] += 1
        update_progress_artifact(progress, 100.0 * done[0] / len(units))

    results, failed = _train_units(config, units, target, specs, on_done)
    if failed:
        raise ExecutionError(
            f"{len(failed)} of {len(units)} target runs failed: " + "; ".join(failed),
            expected="every candidate to train and evaluate",
            fix="fix the cause named above and run validate again: the finished runs are kept in the "
            "store and will not be trained again",
        )

    runs = []
    per_question = {}
    for (c, seed, digest), res in zip(units, results, strict=True):
        run = store.read_json(res["key"])
        run = {**run, "candidate": c.name}  # a shared run (equal weights) reports under each name
        runs.append(run)
        for bench, table in read_final_questions(store, run, digest).items():
            per_question[(c.name, seed, bench)] = table
    summary = summarize_validation(
        runs, per_question, list(val.baselines), n_boot=val.bootstrap, ci=val.ci, seed=val.seed
    )
    vid = hashlib.sha256(
        json.dumps(
            {
                "units": sorted(d for _, _, d in units),
                "names": [c.name for c in candidates],
                "stats": [val.bootstrap, val.ci, val.seed, list(val.baselines)],
                "code": automixer_core.__version__,
            }
        ).encode()
    ).hexdigest()[:16]
    doc = {
        "id": vid,
        "config": val.model_dump(mode="json"),
        "tokens_per_run": val.tokens_per_run,
        "target_summary": f"{target.hidden}-wide, {target.layers} layers, {target.steps} steps × "
        f"{target.batch_size} × {target.seq_len} tokens",
        "candidates_info": [
            {"name": c.name, "weights": c.weights, "source": c.source, "digest": c.digest, **c.meta}
            for c in candidates
        ],
        "corpus_tokens": prep["tokens"],
        "runs": [{"candidate": c.name, "seed": s, "digest": d} for c, s, d in units],
        "summary": summary,
    }
    key = f"validations/{vid}/validation.json"
    store.write_text(f"validations/{vid}/report.html", render_validation(doc))
    store.write_json(key, doc)  # written last: the validation is complete once this exists
    store.write_json(VALIDATION_LATEST, {"id": vid, "uri": store.uri(key)})
    headline = [
        d
        for d in summary["differences"]
        if d["benchmark"] == MEAN and d["metric"] == summary["headline_metric"]
    ]
    create_table_artifact(
        key="validation-differences",
        table=[
            {
                "candidate − baseline": f"{d['candidate']} − {d['baseline']}",
                "Δ mean acc_norm": f"{d['delta']:+.4f}",
                "interval": f"[{d['lo']:+.4f}, {d['hi']:+.4f}]",
            }
            for d in headline
        ],
        description=f"validation {vid}: paired differences, mean over benchmarks, final checkpoint",
    )
    create_markdown_artifact(
        key="validation-summary",
        markdown=f"## Validation `{vid}`\n\n{len(candidates)} candidates × {val.seeds} seeds; report: "
        f"`{store.uri(f'validations/{vid}/report.html')}`",
    )
    return {
        "id": vid,
        "uri": store.uri(key),
        "report": store.uri(f"validations/{vid}/report.html"),
        "counts": {"remixes": remixes, "targets_trained": sum(r["computed"] for r in results)},
        "headline": headline,
        "final": {c: summary["final"][c][summary["headline_metric"]][MEAN] for c in summary["candidates"]},
        "tokens_to_reach": summary["tokens_to_reach"],
    }
