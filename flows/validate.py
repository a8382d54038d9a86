"""Flow ``validate``: candidates → shared tokenizer → one target run per (candidate, seed) →
paired comparisons → ``validations/<id>/`` (DESIGN §6)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel

import automixer_core
from automixer_core.benchmarks import BenchmarkSpec, benchmark_data_digest
from automixer_core.config import RunConfig
from automixer_core.errors import ConfigError, ExecutionError
from automixer_core.mixture import Mixture
from automixer_core.proxy import ProxyConfig
from automixer_core.published import mixture_folder, read_published_mixture
from automixer_core.store import Store
from automixer_core.validation.candidates import (
    Candidate,
    group_weights,
    mixture_weights,
    natural_weights,
    temperature_weights,
    uniform_weights,
)
from automixer_core.validation.config import ValidationConfig
from automixer_core.validation.report import render_validation
from automixer_core.validation.stats import MEAN
from automixer_core.validation.summary import summarize_validation
from flows.naming import run_name
from flows.progress import RunProgress
from flows.remix import remix_flow
from flows.scoring import dask_map, worker_config
from flows.workpool import PoolUnit, run_on_workpool
from tasks.corpus import shards_task
from tasks.publish import add_validation_to_report
from tasks.validation import prepare_task, read_final_questions, run_key, train_candidate_task, unit_digest

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


def _baselines(val: ValidationConfig, tokens: dict[str, int], what: str) -> dict[str, Candidate]:
    rules = {
        "uniform": (lambda: uniform_weights(sorted(tokens)), f"equal weight per domain{what}"),
        "natural": (lambda: natural_weights(tokens), f"each domain's share of the tokens{what}"),
        "temperature": (
            lambda: temperature_weights(tokens, val.temperature),
            f"token shares^(1/τ), τ = {val.temperature}{what}",
        ),
    }
    return {k: Candidate(k, make(), source) for k, (make, source) in rules.items() if k in val.candidates}


def _domain_candidates(
    val: ValidationConfig, mixtures: dict[str, tuple[Mixture, str]], tokens: dict[str, int]
) -> list[Candidate]:
    """Every candidate as a weight per corpus domain (the mixtures' per-domain weights)."""
    base = _baselines(val, tokens, "")
    domains = sorted(tokens)
    return [
        base[k] if k in base else _mixture_candidate(k, mixtures[k][0], mixtures[k][1], domains)
        for k in val.candidates
    ]


def _group_candidates(
    val: ValidationConfig, mixtures: dict[str, tuple[Mixture, str]]
) -> tuple[list[Candidate], dict[str, int]]:
    """Sampling by groups: each mixture candidate trains on its own membership's groups at their
    weights (``residual`` 0); the baselines weight the domains of the same scored documents (the
    first mixture's membership, by its ``domain`` column). Returns the candidates and the scored
    documents' tokens per domain (the scorer's tokenizer)."""
    from automixer_core.mixture import membership_from_parquet

    if not mixtures:
        raise ConfigError(
            f"validation.sample_by is 'groups' but no candidate is a mixture ({val.candidates})",
            fix="add mixture (or final, all) to validation.candidates, or set sample_by: domains",
        )
    built: dict[str, Candidate] = {}
    pool: tuple[str, str, dict[str, int]] | None = None
    for kind, (mix, uri) in mixtures.items():
        folder = mixture_folder(uri)
        member_uri = f"{folder}/membership.parquet"
        data = Store(folder).read_bytes("membership.parquet")
        table = membership_from_parquet(data)
        digest = hashlib.sha256(data).hexdigest()
        if pool is None:
            if "domain" not in table.columns:
                raise ConfigError(
                    f"Mixture {mix.id} ({uri}) has no document domains, which the baselines need",
                    fix="label the corpus by domain, or list only mixture candidates",
                )
            by_domain = table.groupby("domain")["n_tokens"].sum()
            pool = (member_uri, digest, {str(d): int(n) for d, n in by_domain.items()})
        built[kind] = Candidate(
            kind,
            group_weights({g.name: g.weight for g in mix.groups}, uri),
            source=f"mixture {mix.id}, by group",
            meta={"mixture_uri": uri},
            membership=member_uri,
            membership_column="group",
            membership_digest=digest,
        )
    assert pool is not None
    member_uri, digest, tokens = pool
    for k, c in _baselines(val, tokens, ", of the scored documents").items():
        built[k] = replace(c, membership=member_uri, membership_column="domain", membership_digest=digest)
    return [built[k] for k in val.candidates], tokens


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


def _shipped_target(target: ProxyConfig) -> ProxyConfig:
    """``target`` with its local tokenizer and membership paths made absolute, for other folders."""

    def absolute(uri: str | None) -> str | None:
        return uri if uri is None or "://" in uri or Path(uri).is_absolute() else str(Path(uri).resolve())

    return target.model_copy(
        update={
            "tokenizer": absolute(target.tokenizer),
            "group_membership": absolute(target.group_membership),
        }
    )


def _pool_unit(store: Store, shipped_store: str, digest: str, params: dict[str, Any]) -> PoolUnit:
    """One target run as a run of the ``train-target`` deployment: done once its ``run.json`` is in
    the store; the idempotency key names the unit and the store it writes to."""
    key = run_key(digest, "run.json")

    def missing() -> int:
        return 0 if store.exists(key) else 1

    def result(computed: int) -> dict[str, Any]:
        return {"key": key, "computed": bool(computed)}

    return PoolUnit(
        key="automixer-train-" + hashlib.sha256(f"{shipped_store}|{digest}".encode()).hexdigest()[:24],
        parameters=_json_ready(params),
        missing=missing,
        result=result,
    )


def _train_units(
    config: RunConfig,
    units: list[tuple[Candidate, int, str]],
    target: ProxyConfig,
    specs: list[BenchmarkSpec],
    on_done: Callable[[], None],
) -> tuple[list[dict[str, Any] | None], list[str]]:
    """Train every (candidate, seed) unit where ``execution.mode`` says: in this process
    (``local``), as one run of the ``train-target`` deployment each (``workpool``: the same
    idempotency keys, waiting and resuming as scoring), or on Dask (``dask``, one ``GPU`` resource
    per unit). Returns the results in order (None where a unit failed) and the failures in words
    (every other unit is awaited first, and its results are kept in the store)."""
    assert config.corpus is not None
    if config.execution.mode in ("dask", "workpool"):
        shipped = worker_config(config)  # workers run in folders of their own
        assert shipped.corpus is not None
        params = [
            {
                "store_uri": shipped.store,
                "digest": digest,
                "candidate": c.name,
                "weights": c.weights,
                "seed": seed,
                "target": _shipped_target(target.model_copy(update=c.target_updates())),
                "corpus_uri": shipped.corpus.uri,
                "benchmarks": _shipped_specs(specs),
                "evaluation": config.evaluation,
            }
            for c, seed, digest in units
        ]
        if config.execution.mode == "dask":
            return dask_map(config, train_candidate_task, params, on_done), []
        store = Store(config.store)
        pool_units = [
            _pool_unit(store, shipped.store, digest, p)
            for p, (_, _, digest) in zip(params, units, strict=True)
        ]
        return run_on_workpool(
            config.execution.train_deployment,
            pool_units,
            store=config.store,
            tags=["train-target"],
            poll_s=config.execution.poll_s,
            timeout_s=config.execution.timeout_s,
            on_done=on_done,
        )
    futures = [
        train_candidate_task.submit(
            config.store,
            digest,
            c.name,
            c.weights,
            seed,
            target.model_copy(update=c.target_updates()),
            config.corpus.uri,
            specs,
            config.evaluation,
        )
        for c, seed, digest in units
    ]
    results: list[dict[str, Any] | None] = []
    failed = []
    for (c, seed, _), f in zip(units, futures, strict=True):
        try:
            results.append(f.result())
        except Exception as exc:  # every other unit is awaited and kept before this is reported
            results.append(None)
            failed.append(f"{c.name} seed {seed} ({type(exc).__name__}: {exc})")
        on_done()
    return results, failed


def _json_ready(params: dict[str, Any]) -> dict[str, Any]:
    """Flow-run parameters as JSON values (pydantic models dumped), as the API stores them."""

    def dump(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json")
        return [dump(x) for x in v] if isinstance(v, list) else v

    return {k: dump(v) for k, v in params.items()}


@flow(
    name="validate",
    flow_run_name=run_name("validate"),
    task_runner=ThreadPoolTaskRunner(max_workers=1),  # type: ignore[arg-type]
)
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
    progress = RunProgress("validate-progress", ["mixtures", "targets"], "mixtures, then target runs")
    shards = shards_task(config.corpus)
    corpus_digest = hashlib.sha256("".join(s["digest"] for s in shards).encode()).hexdigest()[:16]
    prep = prepare_task(config.store, config.corpus.uri, corpus_digest, val.target)
    log.info("Corpus domains and tokens: %s", prep["tokens"])
    progress.phase("mixtures", len(val.candidates), "candidates", ", ".join(val.candidates))

    # The mixtures first (their remixes), then every candidate in the order the config lists them.
    mixtures: dict[str, tuple[Mixture, str]] = {}
    remixes = 0
    for kind in val.candidates:
        if kind == "mixture" and mixture is not None:
            mixtures[kind] = (read_published_mixture(mixture), mixture)
        elif kind in ("mixture", "final", "all"):  # the remix of the config builds them
            strategy = {"mixture": config.selection.strategy, "final": "final", "all": "all"}[kind]
            remix_cfg = config.model_copy(
                update={"selection": config.selection.model_copy(update={"strategy": strategy})}
            )
            out = remix_flow(remix_cfg)
            remixes += 1
            mixtures[kind] = (read_published_mixture(out["uri"]), out["uri"])
        progress.advance("mixtures")
    progress.end("mixtures", f"{remixes} remixes run or found")
    if val.sample_by == "groups":
        candidates, tokens = _group_candidates(val, mixtures)
    else:
        candidates, tokens = _domain_candidates(val, mixtures, prep["tokens"]), prep["tokens"]

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
    progress.phase(
        "targets",
        len(units),
        "target runs",
        f"{len(candidates)} candidates × {val.seeds} seeds, {config.execution.mode} mode",
    )
    results, failed = _train_units(config, units, target, specs, lambda: progress.advance("targets"))
    trained = sum(bool(r and r["computed"]) for r in results)
    progress.end("targets", f"{trained} trained, {len(units) - trained - len(failed)} from the store")
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
        assert res is not None  # no unit failed
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
        "corpus_tokens": tokens,
        "sample_by": val.sample_by,
        "runs": [{"candidate": c.name, "seed": s, "digest": d} for c, s, d in units],
        "summary": summary,
    }
    key = f"validations/{vid}/validation.json"
    store.write_text(f"validations/{vid}/report.html", render_validation(doc))
    store.write_json(key, doc)  # written last: the validation is complete once this exists
    store.write_json(VALIDATION_LATEST, {"id": vid, "uri": store.uri(key)})
    if "mixture" in mixtures:  # the mixture's own report gets the validation's table and plots
        validated, validated_uri = mixtures["mixture"]
        folder = mixture_folder(validated_uri).rstrip("/")
        if folder.endswith(f"mixtures/{validated.id}"):
            root = folder[: -len(f"mixtures/{validated.id}")].rstrip("/") or "."
            add_validation_to_report(root, validated.id, doc)
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
        "counts": {"remixes": remixes, "targets_trained": sum(bool(r and r["computed"]) for r in results)},
        "headline": headline,
        "final": {c: summary["final"][c][summary["headline_metric"]][MEAN] for c in summary["candidates"]},
        "tokens_to_reach": summary["tokens_to_reach"],
    }
