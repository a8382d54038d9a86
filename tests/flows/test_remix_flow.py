"""The remix flow end to end on a real Prefect API: publish, re-run for free, add a checkpoint, S3, failure."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect import get_client
from prefect.artifacts import Artifact
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

import tasks.publish
from automixer_core.config import RunConfig
from automixer_core.errors import StorageError
from automixer_core.mixture import Mixture
from automixer_core.published import read_published_mixture
from automixer_core.store import Store
from flows.evaluate import evaluate_flow
from flows.remix import remix_flow
from tasks.plan import plan_remix

pytestmark = pytest.mark.slow

BENCHES = ["arc_easy", "piqa", "winogrande"]


def _config(store: str, checkpoints: Path, data: Path, **over: Any) -> RunConfig:
    raw: dict[str, Any] = {
        "store": store,
        "checkpoints": {"uri": str(checkpoints)},
        "benchmarks": {"names": BENCHES, "data_dir": str(data), "eval_limit": 8, "query_limit": 8},
        "corpus": {
            "uri": str(data / "corpus"),
            "max_docs_per_file": 10,
            "shard_docs": 5,
            "max_doc_chars": 600,
        },
        "influence": {"hessian_samples": 16, "batch_size": 8},
        "aggregation": {"bootstrap": 50},
    }
    for section, values in over.items():
        raw.setdefault(section, {}).update(values)
    return RunConfig.model_validate(raw)


def _copy_checkpoints(proxy_run: Any, dest: Path, n: int) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    for ckpt in proxy_run.checkpoints[:n]:
        shutil.copytree(ckpt, dest / ckpt.name)
    return proxy_run.checkpoints


def test_remix_publishes_then_reruns_for_free_then_adds_one_checkpoint(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="prefect.flow_runs")
    ckpts = _copy_checkpoints(proxy_run, tmp_path / "run", 4)
    cfg = _config(str(tmp_path / "store"), tmp_path / "run", shared_data)
    store = Store(cfg.store)

    plan = plan_remix(cfg)  # the dry run says what the remix will run, before it runs
    assert len(plan.evaluations_missing) == plan.evaluations_total == 4 * len(BENCHES)
    assert not plan.selection_known and not plan.nothing_new
    first_state = remix_flow(cfg, return_state=True)
    first = first_state.result()
    assert first["counts"]["evaluations"] == 4 * len(BENCHES)
    assert first["counts"]["queries"] == len(BENCHES)  # one query vector per benchmark
    mixture = Mixture.from_json(store.read_text(f"mixtures/{first['id']}/mixture.json"))
    n_shards = 9 * 2  # nine domain files, 10 documents each, 5 per shard
    n_artifacts = len({a.checkpoint for a in mixture.provenance.artifacts})
    assert first["counts"]["shards_scored"] == n_shards * n_artifacts
    assert len(store.list("scores")) == n_shards * len(BENCHES)
    assert abs(sum(g.weight for g in mixture.groups) - 1) < 1e-9
    assert all(g.weight >= 0 for g in mixture.groups)
    assert {a.benchmark for a in mixture.provenance.artifacts} == set(BENCHES)
    fraction = (mixture.provenance.model_extra or {})["parameter_fraction"]
    assert 0 < fraction < 1  # embed_head: the tied embedding's share of the proxy's parameters
    assert store.read_json("mixtures/latest.json")["id"] == first["id"]
    progress = Artifact.get("remix-progress")  # the UI's progress bar across every phase
    assert progress is not None and progress.type == "progress" and float(progress.data) == 100.0
    # The run's log says what each phase did (INFO, which the command line ships to the API).
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("prefect.flow_runs")]
    for phase in ("inputs", "evaluate", "queries", "score", "publish"):
        assert any(m.startswith(f"{phase} done:") for m in messages), (phase, messages)
    assert f"evaluate: {4 * len(BENCHES)} evaluations (4 checkpoints × {len(BENCHES)} benchmarks)" in messages
    with get_client(sync_client=True) as client:  # scoring tasks named by checkpoint and documents
        scoring = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[first_state.state_details.flow_run_id])),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="score ")),
        )
    assert len(scoring) == n_shards * n_artifacts and all(
        re.fullmatch(r"score checkpoint-\d+ · \S+\.jsonl rows \d+–\d+", t.name) for t in scoring
    )
    plan = plan_remix(cfg)
    assert plan.nothing_new and plan.selection_known
    assert plan.evaluations_missing == plan.queries_missing == [] and plan.scorings_missing == 0
    published = set(store.list(f"mixtures/{first['id']}"))
    for name in ("mixture.json", "membership.parquet", "report.html"):
        assert f"mixtures/{first['id']}/{name}" in published
    assert sum(k.split("/")[2] == "exports" for k in published) == 5

    # Nothing changed: the run ends early in a "nothing new" state; nothing is evaluated or scored.
    state = remix_flow(cfg, return_state=True)
    assert state.is_completed() and state.message == "nothing new"
    with get_client(sync_client=True) as client:  # the run is named from what it does
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.name == f"remix {len(BENCHES)} benchmarks → {tmp_path.name}/store"
    second = state.result()
    assert second["nothing_new"] is True
    assert second["counts"] == {"evaluations": 0, "queries": 0, "shards_scored": 0}
    assert second["ran"] == []
    assert second["id"] == first["id"] and second["written"] is False

    # One new checkpoint: its evaluations run; scoring only where it became an artifact model.
    shutil.copytree(ckpts[4], tmp_path / "run" / ckpts[4].name)
    bound = plan_remix(cfg)
    assert not bound.nothing_new and not bound.selection_known
    assert sorted(bound.evaluations_missing) == sorted(f"{b} @ {ckpts[4].name}" for b in BENCHES)
    assert bound.scorings_missing == n_shards  # at most: every benchmark moving to the new checkpoint
    assert bound.scorings_moved == n_shards and bound.moved_k == len(BENCHES)  # scored all at once
    evaluated = evaluate_flow(cfg)  # the evaluations alone: now the plan knows the rest exactly
    assert evaluated["computed"] == len(BENCHES)
    plan = plan_remix(cfg)
    assert plan.selection_known and plan.evaluations_missing == []
    third = remix_flow(cfg)
    assert third["nothing_new"] is False
    assert third["counts"]["evaluations"] == 0
    assert third["counts"]["queries"] == len(plan.queries_missing)
    assert third["counts"]["shards_scored"] == plan.scorings_missing
    assert third["counts"]["queries"] <= len(bound.queries_missing)
    assert third["counts"]["shards_scored"] <= bound.scorings_missing
    artifacts = Mixture.from_json(
        store.read_text(f"mixtures/{third['id']}/mixture.json")
    ).provenance.artifacts
    moved = [a.benchmark for a in artifacts if a.checkpoint == ckpts[4].name]
    assert third["counts"]["queries"] == len(moved)  # only the benchmarks that chose the new checkpoint
    assert third["counts"]["shards_scored"] == (n_shards if moved else 0)
    if moved:  # the plan knew how many benchmarks the new checkpoint's scorings score at once
        assert plan.benchmarks_by_checkpoint[ckpts[4].name] == len(moved)
    assert len(store.list("scores")) == n_shards * (len(BENCHES) + len(moved))


def test_remix_with_the_store_on_s3(
    prefect_api: None, proxy_run: Any, shared_data: Path, s3_bucket: str, tmp_path: Path
) -> None:
    _copy_checkpoints(proxy_run, tmp_path / "run", 2)
    cfg = _config(
        f"{s3_bucket}/am",
        tmp_path / "run",
        shared_data,
        influence={"estimator": "grad_dot"},
        corpus={"max_doc_chars": 300},
    )
    first = remix_flow(cfg)
    assert first["uri"].startswith(f"{s3_bucket}/am/mixtures/")
    store = Store(cfg.store)
    assert store.exists("mixtures/latest.json")
    assert first["counts"]["shards_scored"] > 0
    assert len(store.list("scores")) >= first["counts"]["shards_scored"]
    again = remix_flow(cfg)
    assert again["counts"] == {"evaluations": 0, "queries": 0, "shards_scored": 0}
    # Documents were cut to 300 characters before scoring (the code files run to thousands of tokens).
    tokens = pd.concat(pd.read_parquet(io.BytesIO(store.read_bytes(k))) for k in store.list("scores"))[
        "n_tokens"
    ]
    assert 0 < tokens.max() <= 300


def test_failed_publish_leaves_latest_on_the_previous_mixture(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_checkpoints(proxy_run, tmp_path / "run", 2)
    cfg = _config(str(tmp_path / "store"), tmp_path / "run", shared_data, influence={"estimator": "grad_dot"})
    store = Store(cfg.store)
    first = remix_flow(cfg)
    before = store.read_json("mixtures/latest.json")

    def broken_report(*args: Any, **kwargs: Any) -> str:
        raise OSError("disk full while writing report.html")

    monkeypatch.setattr(tasks.publish, "render_report", broken_report)
    changed = cfg.model_copy(update={"aggregation": cfg.aggregation.model_copy(update={"alpha": "uniform"})})
    with pytest.raises(OSError, match="disk full"):
        remix_flow(changed)
    assert store.read_json("mixtures/latest.json") == before
    new_dirs = {k.split("/")[1] for k in store.list("mixtures") if k != "mixtures/latest.json"} - {
        first["id"]
    }
    assert new_dirs  # the failed publish left a folder behind ...
    for d in new_dirs:  # ... that no reader takes for a mixture: it has no manifest
        assert not store.exists(f"mixtures/{d}/manifest.json")
        with pytest.raises(StorageError, match="publish did not finish"):
            read_published_mixture(store.uri(f"mixtures/{d}/mixture.json"))
    assert json.loads(store.read_text(f"mixtures/{first['id']}/mixture.json"))["id"] == first["id"]
    assert read_published_mixture(store.uri(f"mixtures/{first['id']}")).id == first["id"]
    # the next run of the same inputs completes the interrupted publish
    monkeypatch.undo()
    done = remix_flow(changed)
    assert done["id"] in new_dirs and done["written"] is True
    assert read_published_mixture(done["uri"]).id == done["id"]
    assert store.read_json("mixtures/latest.json")["id"] == done["id"]


def test_a_diverged_checkpoint_is_never_an_artifact_model_and_the_run_goes_on(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path
) -> None:
    """The latest checkpoint's weights are all NaN (a run that diverged): it is evaluated as
    diverged, never chosen, the selection says why, and a mixture is published from the others."""
    import torch

    from automixer_core.checkpoints import load_checkpoint

    ckpts = _copy_checkpoints(proxy_run, tmp_path / "run", 2)
    model, tokenizer = load_checkpoint(str(ckpts[2]))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    nan_dir = tmp_path / "run" / "checkpoint-999"
    model.save_pretrained(nan_dir)
    tokenizer.save_pretrained(nan_dir)
    cfg = _config(str(tmp_path / "store"), tmp_path / "run", shared_data, influence={"estimator": "grad_dot"})
    out = remix_flow(cfg)
    mixture = Mixture.from_json(Store(cfg.store).read_text(f"mixtures/{out['id']}/mixture.json"))
    assert "checkpoint-999" in {c.name for c in mixture.provenance.checkpoints}
    assert {a.checkpoint for a in mixture.provenance.artifacts} <= {c.name for c in ckpts[:2]}
    selection = pd.read_csv(
        io.StringIO(Store(cfg.store).read_text(out["report"]["selection.csv"].split(cfg.store + "/")[1]))
    )
    assert all("excluded as diverged: checkpoint-999 (non-finite weights" in r for r in selection["reason"])
    evals = pd.read_parquet(
        io.BytesIO(Store(cfg.store).read_bytes(out["report"]["evals.parquet"].split(cfg.store + "/")[1]))
    )
    assert evals.loc[evals["checkpoint"] == "checkpoint-999", "diverged"].all()


def test_two_concurrent_remixes_compute_every_unit_once(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path
) -> None:
    """Two remixes of one config into one store at the same moment: each unit (evaluation, query
    vectors, shard batch) is computed by one of them, the other waits on its lease and reads it."""
    import threading

    _copy_checkpoints(proxy_run, tmp_path / "run", 2)
    cfg = _config(str(tmp_path / "store"), tmp_path / "run", shared_data, influence={"estimator": "grad_dot"})
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def one() -> None:
        start.wait()
        try:
            results.append(remix_flow(cfg))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    assert not errors, errors
    assert results[0]["id"] == results[1]["id"]
    total = {k: results[0]["counts"][k] + results[1]["counts"][k] for k in results[0]["counts"]}
    mixture = Mixture.from_json(Store(cfg.store).read_text(f"mixtures/{results[0]['id']}/mixture.json"))
    n_artifacts = len({a.checkpoint for a in mixture.provenance.artifacts})
    assert total == {
        "evaluations": 2 * len(BENCHES),
        "queries": len(BENCHES),
        "shards_scored": 9 * 2 * n_artifacts,
    }
    assert not Store(cfg.store).list("leases")  # every lease released


def test_target_width_scores_a_random_sample_of_shards_until_the_intervals_are_narrow(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path
) -> None:
    import random

    from automixer_core.mixture import membership_from_parquet
    from tasks.corpus import corpus_shards

    _copy_checkpoints(proxy_run, tmp_path / "run", 3)
    loose = _config(
        str(tmp_path / "store"),
        tmp_path / "run",
        shared_data,
        corpus={"target_width": 0.99, "round_shards": 4, "sample_seed": 7},
    )
    assert loose.corpus is not None
    shards = corpus_shards(loose.corpus)
    order = list(shards)
    random.Random(7).shuffle(order)
    first = remix_flow(loose)
    store = Store(loose.store)
    mixture = Mixture.from_json(store.read_text(f"mixtures/{first['id']}/mixture.json"))
    widest = max(g.weight_ci[1] - g.weight_ci[0] for g in mixture.groups if g.weight_ci is not None)
    assert widest <= 0.99
    # one round: the first 4 shards of the seeded order, scored at every artifact checkpoint
    n_artifacts = len({a.checkpoint for a in mixture.provenance.artifacts})
    assert first["counts"]["shards_scored"] == 4 * n_artifacts
    membership = membership_from_parquet(store.read_bytes(f"mixtures/{first['id']}/membership.parquet"))
    assert len(membership) == sum(s["stop"] - s["start"] for s in order[:4])
    (note,) = [n for n in mixture.notes if n.startswith("sample:")]
    assert f"{len(membership)} of 90 documents scored (4 of 18 shards" in note and f"was {widest:.3f}" in note

    # A target no bootstrap meets: every shard is scored, in rounds, and the note says so.
    tight = loose.model_copy(update={"corpus": loose.corpus.model_copy(update={"target_width": 1e-9})})
    second = remix_flow(tight)
    assert second["counts"]["shards_scored"] == (18 - 4) * n_artifacts  # the first round came from the store
    mixture = Mixture.from_json(store.read_text(f"mixtures/{second['id']}/mixture.json"))
    (note,) = [n for n in mixture.notes if n.startswith("sample:")]
    assert "90 of 90 documents scored (18 of 18 shards" in note and "still" in note
