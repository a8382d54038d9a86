"""Execution modes: the same mixture whether the scoring runs here, on a work pool or on Dask
(the same id and membership; values within a stated tolerance).

Everything is real: the Prefect API of the test harness, ``prefect deploy`` of
deployments/prefect.yaml, process workers started here polling the pools (the remix run itself
goes through ``automixer trigger`` and a worker), and a 2-process Dask ``LocalCluster`` whose
workers declare a ``GPU`` resource.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
import yaml
from prefect import flow
from prefect.artifacts import Artifact
from prefect.task_runners import ThreadPoolTaskRunner

from automixer.deploy import deploy
from automixer_core.config import RunConfig
from automixer_core.errors import ExecutionError
from automixer_core.mixture import Mixture, mixture_differences
from automixer_core.store import Store
from flows.remix import remix_flow
from flows.scoring import ScoringUnit, pool_unit, worker_config
from flows.workpool import submit
from tasks.checkpoints import discover_task
from tasks.corpus import shards_task
from tasks.influence import score_task
from tests.prefect_workers import REPO, ensure_pool, process_workers, tail, worker_env

pytestmark = pytest.mark.slow

BENCHES = ["arc_easy", "piqa", "winogrande"]
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"
GPU_POOL = "automixer-test-gpu-process"


def _raw_config(store: str, checkpoints: Path, data: Path, **execution: Any) -> dict[str, Any]:
    return {
        "store": store,
        "checkpoints": {"uri": str(checkpoints)},
        "benchmarks": {"names": BENCHES, "data_dir": str(data), "eval_limit": 8, "query_limit": 8},
        # 9 files × 10 documents, 5 per shard: 18 shards, 9 per scoring unit → 2 units per checkpoint
        "corpus": {
            "uri": str(data / "corpus"),
            "max_docs_per_file": 10,
            "shard_docs": 5,
            "shards_per_task": 9,
            "max_doc_chars": 600,
        },
        "influence": {"hessian_samples": 16, "batch_size": 8},
        "aggregation": {"bootstrap": 50},
        "execution": {"poll_s": 0.5, **execution},
    }


@pytest.fixture(scope="module")
def run_dir(proxy_run: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three checkpoints of the tiny proxy run (scores at two or three artifact checkpoints)."""
    dest = tmp_path_factory.mktemp("modes") / "run"
    dest.mkdir()
    for ckpt in proxy_run.checkpoints[1:4]:
        shutil.copytree(ckpt, dest / ckpt.name)
    return dest


@pytest.fixture(scope="module")
def local_result(
    prefect_api: None, run_dir: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The reference: the same inputs in ``local`` mode."""
    store = str(tmp_path_factory.mktemp("local-store"))
    result = remix_flow(RunConfig.model_validate(_raw_config(store, run_dir, shared_data)))
    assert result["counts"]["shards_scored"] > 0
    return {**result, "store": store}


def _published(store: str, mixture_id: str) -> tuple[Mixture, pd.DataFrame]:
    """mixture.json and membership.parquet (every document's group and scores)."""
    s = Store(store)
    mixture = Mixture.from_json(s.read_text(f"mixtures/{mixture_id}/mixture.json"))
    membership = pd.read_parquet(io.BytesIO(s.read_bytes(f"mixtures/{mixture_id}/membership.parquet")))
    return mixture, membership


def assert_same_mixture(store: str, reference: dict[str, Any]) -> None:
    """The same mixture (docs/DECISIONS.md): the same id and score files, every document in the same
    group, weights, intervals, densities and scores within SAME_RTOL. Processes with other thread
    counts (Dask workers run one) sum float32 in another order, so bytes may differ."""
    mixture, membership = _published(store, reference["id"])
    ref_mixture, ref_membership = _published(reference["store"], reference["id"])
    assert mixture_differences(mixture, ref_mixture, membership, ref_membership) == []
    assert mixture.provenance.model_dump(exclude={"created_at"}) == ref_mixture.provenance.model_dump(
        exclude={"created_at"}
    )
    assert set(Store(store).list("scores")) == set(Store(reference["store"]).list("scores"))


def _score_keys(store: str) -> set[str]:
    return set(Store(store).list("scores"))


@pytest.fixture()
def api_env(prefect_api: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """PREFECT_API_URL in os.environ, for the processes started below (Dask workers, the CLI)."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))


# --------------------------------------------------------------------------------------------------
# workpool


def _flow_runs(deployment: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)
        return list(
            client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])))
        )


def _deployment_pool(name: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.read_deployment_by_name(name).work_pool_name)


def _set_deployment_config(name: str, config: dict[str, Any]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(name)
        client.update_deployment(dep.id, DeploymentUpdate(parameters={"config": config}))


def _task_run_names(flow_run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name for r in runs]


def _trigger(config: Path | None, key: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
    """``automixer trigger remix`` as a CI job runs it (without a config: the deployment's own)."""
    with_config = ["--config", str(config)] if config is not None else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "automixer",
            "trigger",
            "remix",
            *with_config,
            "--key",
            key,
            "--timeout",
            str(timeout),
        ],
        env=worker_env({"COLUMNS": "200"}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )


def test_workpool_mode_through_trigger_gives_the_local_mixture(
    api_env: None,
    s3_endpoint: str,
    local_result: dict[str, Any],
    run_dir: Path,
    shared_data: Path,
    tmp_path: Path,
) -> None:
    ensure_pool("automixer-cpu")
    ensure_pool(GPU_POOL)
    assert deploy(PREFECT_YAML, ["remix", "proxy-train"]) == ["proxy-train/proxy-train", "remix/remix"]
    gpu = deploy(PREFECT_YAML, ["score-shards", "query-vectors"], pool=GPU_POOL)  # both moved, one call
    assert gpu == ["query-vectors/query-vectors", "score-shards/score-shards"]
    assert {_deployment_pool(name) for name in gpu} == {GPU_POOL}

    store = str(tmp_path / "store")
    config = tmp_path / "workpool.yaml"
    config.write_text(yaml.safe_dump(_raw_config(store, run_dir, shared_data, mode="workpool")))
    key = f"ci-{uuid.uuid4().hex[:8]}"
    # the remix run on a CPU worker, its scoring units on two "GPU" workers (process workers here)
    with (
        process_workers("automixer-cpu", 1, tmp_path / "logs") as cpu_logs,
        process_workers(GPU_POOL, 2, tmp_path / "logs") as gpu_logs,
    ):
        done = _trigger(config, key)
        logs = tail(cpu_logs + gpu_logs)
        assert done.returncode == 0, done.stdout + done.stderr + logs
        again = _trigger(config, key, timeout=30)  # the same key: the same run, nothing started
        assert again.returncode == 0, again.stdout + again.stderr

        # the nightly run: a new run with the deployment's own parameters (as edited in the UI)
        _set_deployment_config("remix/remix", yaml.safe_load(config.read_text()))
        nightly = _trigger(None, f"nightly-{uuid.uuid4().hex[:8]}")
        assert nightly.returncode == 0, nightly.stdout + nightly.stderr + tail(cpu_logs)

        # a run that fails (its store is a bucket that does not exist) exits non-zero, saying why
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            yaml.safe_dump(
                _raw_config(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/am", run_dir, shared_data)
            )
        )
        failed = _trigger(bad, f"ci-bad-{uuid.uuid4().hex[:8]}")
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert "Failed" in failed.stdout and "cannot be written" in failed.stdout + failed.stderr

    assert "Completed" in done.stdout and "mixture " in done.stdout
    # nothing had changed: the nightly run ended "nothing new" and ran no evaluation or scoring task
    assert "nothing new" in nightly.stdout
    (nightly_run,) = [r for r in _flow_runs("remix/remix") if str(r.idempotency_key).startswith("nightly-")]
    assert nightly_run.state.message == "nothing new"
    # no --config: the run took the deployment's own parameters, as a scheduled run does
    assert nightly_run.parameters == {"config": yaml.safe_load(config.read_text())}
    ran = _task_run_names(nightly_run.id)
    assert ran and not [n for n in ran if n.startswith(("evaluate", "queries", "score"))], ran
    assert "found (same idempotency key)" in again.stdout
    runs = [r for r in _flow_runs("remix/remix") if r.idempotency_key == key]
    assert len(runs) == 1, "two triggers with one key must be one run"

    # the same mixture: id, provenance, membership, values within tolerance, and the same score files
    assert Store(store).read_json("mixtures/latest.json")["id"] == local_result["id"]
    assert_same_mixture(store, local_result)
    assert str(Store(store).uri(f"mixtures/{local_result['id']}/mixture.json")) in done.stdout

    # one score-shards run per (artifact checkpoint, shard batch), each with a digest-built key
    scoring = [r for r in _flow_runs("score-shards/score-shards") if r.parameters["config"]["store"] == store]
    n_units = len({k.split("/")[1] for k in _score_keys(store)}) * 2
    assert len(scoring) == n_units and all(r.state.is_completed() for r in scoring)
    assert all(str(r.idempotency_key).startswith("automixer-score-") for r in scoring)

    # the query vectors too: one query-vectors run per artifact checkpoint, on the GPU pool
    building = [
        r for r in _flow_runs("query-vectors/query-vectors") if r.parameters["config"]["store"] == store
    ]
    n_artifacts = len({k.split("/")[1] for k in Store(store).list("queries")})
    assert len(building) == n_artifacts and all(r.state.is_completed() for r in building)
    assert all(str(r.idempotency_key).startswith("automixer-queries-") for r in building)
    assert sum(len(r.parameters["hessian"]) for r in building) == 16 * n_artifacts  # the config's sample

    # submitting a unit again gives the same run (same key), and nothing is scored again
    unit_run = scoring[0]
    cfg = RunConfig.model_validate(unit_run.parameters["config"])
    unit = ScoringUnit(
        unit_run.parameters["checkpoint"], unit_run.parameters["query"], unit_run.parameters["shards"]
    )

    @flow(name="automixer-test-resubmit")
    def resubmit() -> Any:
        return submit(cfg.execution.deployment, pool_unit(cfg, unit, Store(store)), ["score-shards"])

    before = len(_flow_runs("score-shards/score-shards"))
    again_run = resubmit()
    assert again_run is not None and again_run.id == unit_run.id
    assert len(_flow_runs("score-shards/score-shards")) == before


def test_workpool_waits_resumes_and_retries_only_failed_units(
    prefect_api: None, run_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    """No worker polls the pool: the remix gives up after timeout_s naming the runs; a re-run waits
    on the same runs (same keys); a unit whose run failed gets one new run, the others do not."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Failed

    from flows.query_vectors import query_vectors_flow

    ensure_pool(GPU_POOL)
    deploy(PREFECT_YAML, ["score-shards", "query-vectors"], pool=GPU_POOL)
    store = str(tmp_path / "store")
    cfg = RunConfig.model_validate(_raw_config(store, run_dir, shared_data, mode="workpool", timeout_s=1))

    def mine(deployment: str = "score-shards/score-shards") -> list[Any]:
        return [r for r in _flow_runs(deployment) if r.parameters["config"]["store"] == store]

    try:
        # The query vectors go first: their runs wait for a worker too. Built here instead (the
        # same flow, in this process), their waiting runs marked done: the next remix takes them.
        with pytest.raises(ExecutionError, match=r"query-vectors runs unfinished after 1s"):
            remix_flow(cfg)
        waiting = mine("query-vectors/query-vectors")
        assert waiting and all(str(r.idempotency_key).startswith("automixer-queries-") for r in waiting)
        with get_client(sync_client=True) as client:
            for run in waiting:
                query_vectors_flow(**run.parameters)
                client.set_flow_run_state(run.id, Completed(), force=True)
        with pytest.raises(
            ExecutionError, match=r"score-shards runs unfinished after 1s.*same idempotency keys"
        ):
            remix_flow(cfg)
        first = mine()
        assert first and all(str(r.idempotency_key).endswith("-0") for r in first)
        with pytest.raises(ExecutionError, match="unfinished"):
            remix_flow(cfg)
        assert {r.id for r in mine()} == {r.id for r in first}  # the same runs, awaited again

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(first[0].id, Failed(message="GPU fell off the bus"), force=True)
        with pytest.raises(ExecutionError, match="unfinished"):
            remix_flow(cfg)
        after = mine()
        new = [r for r in after if r.id not in {f.id for f in first}]
        assert len(new) == 1 and str(new[0].idempotency_key) == str(first[0].idempotency_key)[:-2] + "-1"
        assert len(after) == len(first) + 1
    finally:  # leave no scheduled run for the workers of other tests
        with get_client(sync_client=True) as client:
            for r in mine() + mine("query-vectors/query-vectors"):
                client.delete_flow_run(r.id)


def test_worker_config_makes_local_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig.model_validate(
        {"store": "st", "checkpoints": {"uri": "run"}, "corpus": {"uri": "s3://bucket/corpus"}}
    )
    shipped = worker_config(cfg)
    assert shipped.store == str(tmp_path / "st")
    assert shipped.checkpoints.uri == str(tmp_path / "run")
    assert shipped.corpus is not None and shipped.corpus.uri == "s3://bucket/corpus"


def test_workpool_mode_names_a_missing_deployment(
    prefect_api: None, run_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    # the first units a workpool remix submits are its query vectors (the scoring units use the
    # same submit, flows.workpool.submit, with execution.deployment)
    raw = _raw_config(
        str(tmp_path / "store"), run_dir, shared_data, mode="workpool", query_deployment="query-vectors/nope"
    )
    with pytest.raises(
        ExecutionError, match=r"No deployment 'query-vectors/nope'.*automixer deploy --name query-vectors"
    ):
        remix_flow(RunConfig.model_validate(raw))


# --------------------------------------------------------------------------------------------------
# dask


@pytest.fixture()
def dask_cluster(api_env: None) -> Iterator[str]:
    """A 2-process LocalCluster whose workers each declare one GPU (DESIGN §5: about 5 s)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, resources={"GPU": 1}, dashboard_address=None
    ) as cluster:
        yield str(cluster.scheduler_address)


def test_dask_mode_gives_the_local_mixture(
    dask_cluster: str, local_result: dict[str, Any], run_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    store = str(tmp_path / "store")
    raw = _raw_config(
        store,
        run_dir,
        shared_data,
        mode="dask",
        dask_address=dask_cluster,
        gpu_concurrency=2,
        gpu_limit_name=f"gpu-{uuid.uuid4().hex[:6]}",
    )
    state = remix_flow(RunConfig.model_validate(raw), return_state=True)
    result = state.result()
    assert result["id"] == local_result["id"]
    assert result["counts"] == local_result["counts"]
    progress = cast(Artifact | None, Artifact.get("remix-progress"))  # the UI's progress bar, every phase
    assert progress is not None and float(cast(float, progress.data)) == 100.0
    assert progress.flow_run_id == state.state_details.flow_run_id
    assert_same_mixture(store, local_result)
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(raw["execution"]["gpu_limit_name"])
    assert limit.limit == 2 and limit.active_slots == 0  # created from the config, every slot released


def test_dask_mode_refuses_a_cluster_without_gpus(
    api_env: None, run_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        raw = _raw_config(
            str(tmp_path / "s"), run_dir, shared_data, mode="dask", dask_address=cluster.scheduler_address
        )
        with pytest.raises(ExecutionError, match=r"declares a GPU resource.*--resources GPU=1"):
            remix_flow(RunConfig.model_validate(raw))


def test_dask_mode_names_an_unreachable_scheduler(
    prefect_api: None, run_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    raw = _raw_config(
        str(tmp_path / "s"), run_dir, shared_data, mode="dask", dask_address="tcp://127.0.0.1:9"
    )
    with pytest.raises(ExecutionError, match=r"Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        remix_flow(RunConfig.model_validate(raw))


# --------------------------------------------------------------------------------------------------
# the GPU concurrency limit


def test_gpu_limit_really_bounds_concurrent_scoring(
    prefect_api: None, local_result: dict[str, Any], run_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    """Two scoring tasks at once: with a limit of 1 their busy spans are disjoint; without, they overlap."""
    from prefect.client.orchestration import get_client

    cfg = RunConfig.model_validate(_raw_config(str(tmp_path / "s"), run_dir, shared_data))
    corpus = cfg.corpus
    assert corpus is not None
    ref = Store(local_result["store"])
    # reuse the reference run's query vectors: copy them into fresh stores
    queries = ref.list("queries")
    fingerprint = queries[0].split("/")[1]
    bench_keys = {k.split("/")[2]: k for k in queries if k.split("/")[1] == fingerprint}
    query = {
        "keys": bench_keys,
        "hashes": {b: k.split("/")[3].split("-v")[0] for b, k in bench_keys.items()},
    }

    limit_name = f"gpu-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(limit_name, 1)

    @flow(name="automixer-test-two-at-once", task_runner=ThreadPoolTaskRunner(max_workers=2))  # type: ignore[arg-type]
    def two_at_once(store_uri: str, gpu_limit: str | None) -> list[dict[str, Any]]:
        shards = shards_task(corpus)
        checkpoint = next(c for c in discover_task(str(run_dir)) if c["fingerprint"] == fingerprint)
        futures = [
            score_task.submit(store_uri, checkpoint, query, batch, cfg.influence, corpus, "cpu", gpu_limit)
            for batch in (shards[:6], shards[6:12])
        ]
        return [f.result() for f in futures]

    def spans(gpu_limit: str | None) -> list[list[float]]:
        store = Store(str(tmp_path / f"store-{gpu_limit}"))
        for k in bench_keys.values():
            store.write_bytes(k, ref.read_bytes(k))
        results = two_at_once(store.root, gpu_limit)
        assert all(r["computed"] == 6 for r in results)
        # two threads sharing one cached model still write exactly the scores of a lone run
        for r in results:
            for key in (k for keys in r["keys"].values() for k in keys):
                assert store.read_bytes(key) == ref.read_bytes(key), key
        return sorted(r["busy"] for r in results)

    (a0, a1), (b0, b1) = spans(limit_name)
    assert b0 >= a1, f"limit 1 but the spans overlap: {a0:.2f}-{a1:.2f} and {b0:.2f}-{b1:.2f}"
    (_, c1), (d0, _) = spans(None)
    assert d0 < c1, "without a limit the two tasks ran one after the other: the check above proves nothing"
