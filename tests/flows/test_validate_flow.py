"""The validate flow on a real Prefect API: a tiny validation (2-3 candidates, 1 seed, 20 steps)
checked for structure, caching, the paired statistics against a direct computation from the
stored per-question results, and its errors."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from automixer_core.config import RunConfig
from automixer_core.errors import ConfigError, StorageError
from automixer_core.mixture import Mixture, MixtureDomain, MixtureGroup, Provenance
from automixer_core.published import read_published_mixture, write_manifest
from automixer_core.store import Store
from flows.validate import validate_flow

pytestmark = pytest.mark.slow

BENCHES = ["arc_easy", "piqa"]
DOMAINS3 = ["howto", "math", "social"]
TARGET = {
    "hidden": 32,
    "layers": 1,
    "heads": 2,
    "intermediate": 64,
    "vocab_size": 512,
    "seq_len": 64,
    "batch_size": 8,
    "steps": 20,
    "warmup": 2,
    "save_every": 10,
    "max_docs_per_group": 30,
    "tokenizer_docs": 120,
    "num_threads": 1,
}


def _config(store: str, data: Path, run: Path, **validation: Any) -> RunConfig:
    return RunConfig.model_validate(
        {
            "store": store,
            "checkpoints": {"uri": str(run)},
            "benchmarks": {"names": BENCHES, "data_dir": str(data), "eval_limit": 20, "query_limit": 8},
            "corpus": {"uri": str(data / "corpus"), "max_docs_per_file": 10, "shard_docs": 10},
            "validation": {
                "candidates": ["uniform", "natural"],
                "baselines": ["uniform"],
                "seeds": 1,
                "target": TARGET,
                "bootstrap": 200,
                **validation,
            },
        }
    )


def _hand_mixture(domains: dict[str, float]) -> Mixture:
    prov = Provenance(
        checkpoints=[], artifacts=[], estimator="datainf", layers="embed_head", alpha={}, config_hash="h"
    )
    total = sum(domains.values())
    entries = [
        MixtureDomain(name=n, weight=w / total, tokens=100, documents=1, density=w, mean_doc_tokens=100.0)
        for n, w in domains.items()
    ]
    group = MixtureGroup(name="g", weight=1.0, tokens=100, documents=1, density=1.0, mean_doc_tokens=100.0)
    return Mixture(groups=[group], domains=entries, provenance=prov).with_id()


def _publish(folder: Path, mixture: Mixture, report: bool = False) -> Path:
    """A published folder: mixture.json and its manifest (what readers require), and a report."""
    folder.mkdir(parents=True)
    (folder / "mixture.json").write_text(mixture.to_json())
    names = ["mixture.json"]
    if report:
        (folder / "report.html").write_text("<!DOCTYPE html><html><body><h1>mixture</h1></body></html>")
        names.append("report.html")
    write_manifest(Store(str(folder)), "", names)
    return folder / "mixture.json"


def test_an_interrupted_publish_is_refused(prefect_api: None, shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixtures" / "abc"
    folder.mkdir(parents=True)
    (folder / "mixture.json").write_text(_hand_mixture({"math": 1.0}).to_json())  # no manifest: killed
    cfg = _config(
        str(tmp_path / "store"), shared_data, tmp_path / "no-run", candidates=["mixture", "uniform"]
    )
    with pytest.raises(StorageError, match="publish did not finish"):
        validate_flow(cfg, str(folder / "mixture.json"))


@pytest.fixture(scope="module")
def validated(
    prefect_api: None, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("validate")
    mixture = _hand_mixture({"math": 3.0, "howto": 1.0, "social": 1.0})
    mixture_path = _publish(root / "published" / "mixtures" / mixture.id, mixture, report=True)
    cfg = _config(
        str(root / "store"), shared_data, root / "no-run", candidates=["mixture", "uniform", "natural"]
    )
    out = validate_flow(cfg, str(mixture_path))
    return {"out": out, "cfg": cfg, "mixture": str(mixture_path)}


def test_validation_publishes_its_document_report_and_runs(validated: dict[str, Any]) -> None:
    out, cfg = validated["out"], validated["cfg"]
    store = Store(cfg.store)
    doc = json.loads(store.read_text(f"validations/{out['id']}/validation.json"))
    assert store.read_json("validations/latest.json")["id"] == out["id"]
    assert out["counts"] == {"remixes": 0, "targets_trained": 3}
    assert [c["name"] for c in doc["candidates_info"]] == ["mixture", "uniform", "natural"]
    mixture_w = doc["candidates_info"][0]["weights"]
    assert mixture_w["math"] == pytest.approx(0.6) and mixture_w["code"] == 0.0
    natural = doc["candidates_info"][2]["weights"]
    tokens = doc["corpus_tokens"]
    assert natural["math"] == pytest.approx(tokens["math"] / sum(tokens.values()))
    summary = doc["summary"]
    assert sorted(summary["candidates"]) == ["mixture", "natural", "uniform"]
    for cand in summary["candidates"]:
        assert sorted(summary["final"][cand]["acc_norm"]) == sorted([*BENCHES, "mean"])
        assert [p["step"] for p in summary["curves"][cand]] == [10, 20]
    pairs = {(d["candidate"], d["baseline"]) for d in summary["differences"]}
    assert pairs == {("mixture", "uniform"), ("natural", "uniform")}
    html = store.read_text(f"validations/{out['id']}/report.html")
    assert "Paired differences" in html and "<img" in html and "mixture − uniform" in html
    # the mixture's own report now carries the validation, and its folder still verifies
    mixture_report = (Path(validated["mixture"]).parent / "report.html").read_text()
    assert out["id"] in mixture_report and "mixture − uniform" in mixture_report
    assert read_published_mixture(validated["mixture"]).id == Path(validated["mixture"]).parent.name
    # every target run is stored with per-question metrics per (checkpoint, benchmark)
    runs = store.list("validations/runs")
    assert sum(k.endswith("/run.json") for k in runs) == 3
    assert sum(k.endswith(".parquet") for k in runs) == 3 * 2 * len(BENCHES)


def test_paired_differences_equal_a_direct_computation_from_the_stored_questions(
    validated: dict[str, Any],
) -> None:
    out, cfg = validated["out"], validated["cfg"]
    store = Store(cfg.store)
    doc = json.loads(store.read_text(f"validations/{out['id']}/validation.json"))
    digest = {r["candidate"]: r["digest"] for r in doc["runs"]}

    def questions(candidate: str, bench: str) -> pd.DataFrame:
        return pd.read_parquet(
            io.BytesIO(store.read_bytes(f"validations/runs/{digest[candidate]}/step-20/{bench}.parquet"))
        ).sort_index()

    deltas = []
    for bench in BENCHES:
        a, b = questions("mixture", bench), questions("uniform", bench)
        assert a.index.equals(b.index) and len(a) == 20  # the same questions on both sides
        delta = float(np.mean(a["gold_ll"].to_numpy() - b["gold_ll"].to_numpy()))
        deltas.append(delta)
        got = next(
            d
            for d in doc["summary"]["differences"]
            if (d["candidate"], d["baseline"], d["metric"], d["benchmark"])
            == ("mixture", "uniform", "gold_ll", bench)
        )
        assert got["delta"] == pytest.approx(delta, abs=1e-12)
        assert got["lo"] <= got["delta"] <= got["hi"]
    mean = next(
        d
        for d in doc["summary"]["differences"]
        if (d["candidate"], d["baseline"], d["metric"], d["benchmark"])
        == ("mixture", "uniform", "gold_ll", "mean")
    )
    assert mean["delta"] == pytest.approx(float(np.mean(deltas)), abs=1e-12)


def test_a_rerun_trains_nothing_and_a_new_candidate_trains_only_itself(
    validated: dict[str, Any], shared_data: Path
) -> None:
    cfg = validated["cfg"]
    again = validate_flow(cfg, validated["mixture"])
    assert again["counts"]["targets_trained"] == 0 and again["id"] == validated["out"]["id"]
    more = cfg.model_copy(
        update={
            "validation": cfg.validation.model_copy(
                update={"candidates": ["mixture", "uniform", "natural", "temperature"]}
            )
        }
    )
    out = validate_flow(more, validated["mixture"])
    assert out["counts"]["targets_trained"] == 1 and out["id"] != validated["out"]["id"]


def test_a_mixture_of_another_corpus_is_refused_before_any_training(
    prefect_api: None, shared_data: Path, tmp_path: Path
) -> None:
    path = _publish(tmp_path / "published", _hand_mixture({"poetry": 1.0, "math": 1.0}))
    cfg = _config(
        str(tmp_path / "store"), shared_data, tmp_path / "no-run", candidates=["mixture", "uniform"]
    )
    with pytest.raises(ConfigError, match=r"\['poetry'\] that the corpus does not have"):
        validate_flow(cfg, str(path))
    assert not Store(cfg.store).list("validations/runs")


def _assert_same_runs(local_store: str, remote_store: str, validation_id: str) -> None:
    """Every target run of the validation has the local runs' per-question numbers (to 1e-6:
    another process, the same single thread)."""
    local, remote = Store(local_store), Store(remote_store)
    doc = json.loads(remote.read_text(f"validations/{validation_id}/validation.json"))
    for run in doc["runs"]:
        for bench in BENCHES:
            key = f"validations/runs/{run['digest']}/step-20/{bench}.parquet"
            got = pd.read_parquet(io.BytesIO(remote.read_bytes(key)))
            want = pd.read_parquet(io.BytesIO(local.read_bytes(key)))
            pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-9)


@pytest.fixture()
def dask_cluster(prefect_api: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A 2-process LocalCluster whose workers each declare one GPU; the API URL in the environment."""
    from distributed import LocalCluster
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, resources={"GPU": 1}, dashboard_address=None
    ) as cluster:
        yield str(cluster.scheduler_address)


def test_dask_mode_trains_the_same_targets_on_the_cluster(
    dask_cluster: str, validated: dict[str, Any], shared_data: Path, tmp_path: Path
) -> None:
    """The target runs fan out to Dask workers and give the local runs' numbers (to 1e-6: another
    process, the same single thread)."""
    cfg = _config(str(tmp_path / "store"), shared_data, tmp_path / "no-run")
    cfg = cfg.model_copy(
        update={"execution": cfg.execution.model_copy(update={"mode": "dask", "dask_address": dask_cluster})}
    )
    out = validate_flow(cfg)
    assert out["counts"]["targets_trained"] == 2
    _assert_same_runs(validated["cfg"].store, cfg.store, out["id"])


def test_workpool_mode_trains_each_target_as_a_run_of_train_target(
    prefect_api: None, validated: dict[str, Any], shared_data: Path, tmp_path: Path
) -> None:
    """One train-target flow run per (candidate, seed) on a work pool polled by two process
    workers, each with a digest-built idempotency key; the numbers are the local runs' (to 1e-6);
    a re-run submits nothing."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    from automixer.deploy import deploy
    from tests.prefect_workers import REPO, ensure_pool, process_workers, tail

    pool = "automixer-test-train-process"
    ensure_pool(pool)
    assert deploy(REPO / "deployments" / "prefect.yaml", ["train-target"], pool=pool) == [
        "train-target/train-target"
    ]
    cfg = _config(str(tmp_path / "store"), shared_data, tmp_path / "no-run")
    cfg = cfg.model_copy(
        update={
            "execution": cfg.execution.model_copy(
                update={"mode": "workpool", "poll_s": 0.5, "timeout_s": 600}
            )
        }
    )

    def runs() -> list[Any]:
        with get_client(sync_client=True) as client:
            found = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["train-target"]))
            )
        return [r for r in found if r.parameters["store_uri"] == cfg.store]

    with process_workers(pool, 2, tmp_path / "logs") as logs:
        out = validate_flow(cfg)
        assert out["counts"]["targets_trained"] == 2, tail(logs)
    first = runs()
    assert len(first) == 2 and all(r.state.is_completed() for r in first)
    assert all(str(r.idempotency_key).startswith("automixer-train-") for r in first)
    assert sorted(r.name for r in first) == ["train natural seed 0", "train uniform seed 0"]

    _assert_same_runs(validated["cfg"].store, cfg.store, out["id"])

    again = validate_flow(cfg)  # no worker now: every unit is in the store, nothing is submitted
    assert again["counts"]["targets_trained"] == 0 and again["id"] == out["id"]
    assert len(runs()) == 2


def test_sampling_by_groups_trains_on_the_membership(
    prefect_api: None, shared_data: Path, tmp_path: Path
) -> None:
    """sample_by: groups. The mixture target draws its tokens from the mixture's groups only
    (`residual` at weight 0 draws none); the baseline weights the domains of the same scored
    documents, so it sees 3 domains, not the corpus's 9."""
    from automixer_core.corpus import iter_documents
    from automixer_core.mixture import membership_to_parquet

    docs = [d for d in iter_documents(str(shared_data / "corpus"), max_docs=None) if d.group in DOMAINS3]
    picked = [d for dom in DOMAINS3 for d in [x for x in docs if x.group == dom][:12]]
    groups = ["g1" if i % 3 == 0 else "g2" if i % 3 == 1 else "residual" for i in range(len(picked))]
    membership = pd.DataFrame(
        {
            "doc_id": [d.id for d in picked],
            "group": groups,
            "joint_score": [1.0] * len(picked),
            "n_tokens": [100] * len(picked),
            "domain": [d.group for d in picked],
        }
    )
    prov = Provenance(
        checkpoints=[], artifacts=[], estimator="datainf", layers="embed_head", alpha={}, config_hash="h"
    )
    entries = [
        MixtureGroup(name=g, weight=w, tokens=100, documents=12, density=w, mean_doc_tokens=100.0)
        for g, w in (("g1", 0.7), ("g2", 0.3), ("residual", 0.0))
    ]
    mixture = Mixture(groups=entries, provenance=prov).with_id()
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "mixture.json").write_text(mixture.to_json())
    (folder / "membership.parquet").write_bytes(membership_to_parquet(membership))
    write_manifest(Store(str(folder)), "", ["mixture.json", "membership.parquet"])

    cfg = _config(
        str(tmp_path / "store"),
        shared_data,
        tmp_path / "no-run",
        candidates=["mixture", "uniform"],
        sample_by="groups",
    )
    out = validate_flow(cfg, str(folder))  # the folder, not its mixture.json: both name the mixture
    store = Store(cfg.store)
    doc = json.loads(store.read_text(f"validations/{out['id']}/validation.json"))
    assert doc["sample_by"] == "groups"
    info = {c["name"]: c for c in doc["candidates_info"]}
    assert info["mixture"]["weights"] == pytest.approx({"g1": 0.7, "g2": 0.3, "residual": 0.0})
    assert info["uniform"]["weights"] == pytest.approx({d: 1 / 3 for d in DOMAINS3})
    assert doc["corpus_tokens"] == {d: 1200 for d in DOMAINS3}  # the scored documents' tokens
    runs = {
        r["candidate"]: json.loads(store.read_text(f"validations/runs/{r['digest']}/run.json"))
        for r in doc["runs"]
    }
    drawn = runs["mixture"]["group_tokens"]
    assert (
        set(drawn) <= {"g1", "g2", "residual"}
        and drawn.get("residual", 0) == 0
        and drawn["g1"] > drawn["g2"] > 0
    )
    assert set(runs["uniform"]["group_tokens"]) == set(DOMAINS3)
