"""deployments/prefect.yaml, the GPU job template, automixer.deploy on a real Prefect API, the CI workflow.

No mocks: deployments are registered with ``prefect deploy`` against the test harness's server,
flow runs are created through the API, and one run is executed by a real process worker.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow, flow

from automixer.deploy import (
    DeploymentError,
    deploy,
    deployment_names,
    form_fields,
    local_parameter_schema,
    parameter_schema,
    trigger,
)
from tests.prefect_workers import ensure_pool, worker_command

REPO = Path(__file__).resolve().parents[1]
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"
GPU_TEMPLATE = REPO / "deployments" / "gpu-job-template.json"
WORKFLOW = REPO / ".github" / "workflows" / "remix.yml"

EXPECTED = {
    "remix": ("flows/remix.py:remix_flow", "automixer-cpu"),
    "score-shards": ("flows/score_shards.py:score_shards_flow", "automixer-gpu"),
    "query-vectors": ("flows/query_vectors.py:query_vectors_flow", "automixer-gpu"),
    "train-target": ("flows/train_target.py:train_target_flow", "automixer-gpu"),
    "label-shards": ("flows/label_shards.py:label_shards_flow", "automixer-cpu"),
    "proxy-train": ("flows/proxy_train.py:proxy_train_flow", "automixer-cpu"),
}


@flow(name="automixer-test-echo", persist_result=True)
def echo_flow(value: int = 1) -> dict[str, int]:
    """A trivial flow that a real process worker runs in the end-to-end trigger test."""
    return {"echo": value}


def _project() -> dict[str, Any]:
    return yaml.safe_load(PREFECT_YAML.read_text())


def _by_name() -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in _project()["deployments"]}


# --------------------------------------------------------------------------------------------------
# the project file, without an API


def test_prefect_yaml_is_valid_for_prefect_deploy() -> None:
    """Prefect's own model of the file accepts it (a rejected file is silently skipped by `prefect deploy`)."""
    from prefect.cli.deploy._models import PrefectYamlModel

    model = PrefectYamlModel.model_validate(_project())
    assert [d.name for d in model.deployments] == list(EXPECTED)
    assert deployment_names(PREFECT_YAML) == list(EXPECTED)
    for d in model.deployments:
        entrypoint, pool = EXPECTED[str(d.name)]
        assert d.entrypoint == entrypoint
        assert d.work_pool is not None and d.work_pool.name == pool
    # every run changes into the worker's checkout first, so entrypoints and relative paths resolve
    assert model.pull == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $AUTOMIXER_REPO }}"}}
    ]


def test_remix_schedule_is_nightly_utc_cron() -> None:
    from prefect.client.schemas.schedules import CronSchedule

    (schedule,) = _by_name()["remix"]["schedules"]
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    assert cron.timezone == "UTC" and schedule["cron"] == "0 2 * * *"
    assert schedule["active"] is True and schedule["slug"] == "nightly"


def test_remix_default_parameters_are_a_valid_run_config() -> None:
    from automixer_core.config import RunConfig, load_config

    params = _by_name()["remix"]["parameters"]
    assert set(params) == {"config"}
    config = RunConfig.model_validate(params["config"])
    assert config.corpus is not None, "the remix flow needs a corpus section"
    example = load_config(REPO / "configs" / "example.yaml")
    assert config == example, "the nightly default is configs/example.yaml inlined: update prefect.yaml"


def test_proxy_train_default_parameters_match_the_flow() -> None:
    from prefect.utilities.callables import parameter_schema as flow_schema

    from flows.proxy_train import proxy_train_flow

    params = _by_name()["proxy-train"]["parameters"]
    assert set(params) <= set(flow_schema(proxy_train_flow).properties)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_entrypoint_is_a_flow(name: str) -> None:
    entrypoint, _ = EXPECTED[name]
    path, func = entrypoint.split(":")
    if not (REPO / path).is_file():
        if name == "score-shards":
            pytest.skip(f"{path} does not exist yet (the scoring-unit flow is added separately)")
        pytest.fail(f"entrypoint file {path} of deployment {name!r} is missing")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    obj = getattr(module, func, None)
    assert isinstance(obj, Flow), f"{entrypoint} is not a Prefect flow"
    if name == "score-shards":
        from prefect.utilities.callables import parameter_schema as flow_schema

        assert set(flow_schema(obj).properties) >= {"config", "checkpoint", "shards"}


def test_gpu_job_template_requests_one_gpu() -> None:
    """The template resolves, with its defaults, to a Job whose container requests nvidia.com/gpu: 1."""
    from prefect.server.schemas.actions import validate_base_job_template
    from prefect.utilities.templating import apply_values

    template = json.loads(GPU_TEMPLATE.read_text())
    validate_base_job_template(template)  # what the server runs on `prefect work-pool create`
    props = template["variables"]["properties"]
    defaults = {k: v["default"] for k, v in props.items() if "default" in v}
    resolved = apply_values(template["job_configuration"], defaults)
    pod = resolved["job_manifest"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert container["resources"]["requests"] == {"nvidia.com/gpu": 1}
    assert container["image"] == "automixer-gpu:latest"
    assert container["envFrom"] == [{"secretRef": {"name": "automixer-credentials", "optional": True}}]
    assert "nodeSelector" not in pod  # unset variables drop out of the manifest
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    # a job may ask for more GPUs through the job variable
    more = apply_values(template["job_configuration"], {**defaults, "gpu_count": 2})
    assert more["job_manifest"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "nvidia.com/gpu": 2
    }


def test_api_calls_need_an_api_url() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(DeploymentError, match="PREFECT_API_URL is not set"),
    ):
        parameter_schema("remix")


def test_deploy_rejects_unknown_names_and_missing_entrypoints(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match=r"no deployment named \['nope'\].*proxy-train"):
        deploy(PREFECT_YAML, ["nope"])
    bad = tmp_path / "prefect.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"deployments": [{"name": "x", "entrypoint": "flows/absent.py:f", "work_pool": {"name": "p"}}]}
        )
    )
    with pytest.raises(DeploymentError, match=r"Entrypoint files missing.*flows/absent.py"):
        deploy(bad, root=REPO)


def test_ci_workflow_triggers_remix_idempotently_with_secrets() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    (job,) = wf["jobs"].values()
    env = job["env"]
    for var in ("PREFECT_API_URL", "PREFECT_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[var] == f"${{{{ secrets.{var} }}}}", f"{var} must come from the repository secrets"
    runs = " ".join(str(s.get("run", "")) for s in job["steps"])
    assert "automixer trigger remix" in runs and "--key" in runs and "--config" in runs
    assert "torch==2.13.0" in runs and "pip install ." in runs
    assert "github.sha" in json.dumps(wf)


# --------------------------------------------------------------------------------------------------
# on a real Prefect API


@pytest.fixture(scope="module")
def remix_deployment(prefect_api: None) -> str:
    """Every deployment of deployments/prefect.yaml registered by `prefect deploy` (through deploy())."""
    ensure_pool("automixer-cpu", "process")
    ensure_pool("automixer-gpu", "kubernetes", json.loads(GPU_TEMPLATE.read_text()))
    wanted = [n for n, (entry, _) in EXPECTED.items() if (REPO / entry.split(":")[0]).is_file()]
    names = deploy(PREFECT_YAML, None if len(wanted) == len(EXPECTED) else wanted)
    assert names == sorted(f"{n}/{n}" for n in wanted)  # each flow is named like its deployment
    return "remix/remix"


def test_gpu_pool_is_created_from_the_template(prefect_api: None) -> None:
    from prefect.client.orchestration import get_client

    template = json.loads(GPU_TEMPLATE.read_text())
    ensure_pool("automixer-gpu", "kubernetes", template)
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("automixer-gpu")
    assert pool.type == "kubernetes"
    assert pool.base_job_template == template


def test_deploy_needs_existing_work_pools(prefect_api: None, tmp_path: Path) -> None:
    project = _project()
    project["deployments"] = [{**_by_name()["remix"], "work_pool": {"name": "no-such-pool"}}]
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(project))
    with pytest.raises(DeploymentError, match=r"Work pool\(s\) \['no-such-pool'\] do not exist"):
        deploy(path, ["remix"], root=REPO)


def _undescribed(schema: dict[str, Any]) -> list[str]:
    """Dotted paths of the run form's fields without a description (see automixer.deploy.form_fields)."""
    return [f.path for f in form_fields(schema) if not f.description]


def test_remix_parameter_schema_describes_every_field(remix_deployment: str) -> None:
    schema = parameter_schema(remix_deployment)
    assert schema == parameter_schema("remix")  # bare names resolve when unambiguous
    config = schema["properties"]["config"]
    assert schema["required"] == ["config"]
    assert config["$ref"].endswith("/RunConfig")
    defs = schema["definitions"]
    for section in ("checkpoints", "benchmarks", "evaluation", "selection", "corpus", "influence"):
        assert section in defs["RunConfig"]["properties"]
    assert defs["CheckpointsConfig"]["properties"]["uri"]["description"]
    missing = _undescribed(schema)
    assert missing == [], f"RunConfig fields without a description in the UI form: {missing}"


def test_run_form_as_the_ui_renders_it(remix_deployment: str) -> None:
    """The registered schema equals the one computed from the code, and its form has every section's
    fields, typed, with defaults and descriptions (what `automixer schema` prints)."""
    schema = parameter_schema(remix_deployment)
    assert schema == local_parameter_schema(EXPECTED["remix"][0])
    fields = {f.path: f for f in form_fields(schema)}
    assert fields["config"].required and fields["config.checkpoints.uri"].required
    mode = fields["config.execution.mode"]
    assert (mode.type, mode.default) == ("one of local, workpool, dask", "local")
    assert fields["config.execution.gpu_concurrency"].type == "integer | null"
    assert fields["config.corpus"].type == "section | null"
    from automixer_core.config import BenchmarksConfig  # here: a worker loads this module as a script

    # Every optional field shows its default (a list or a section made by a factory too: the form
    # must not say "No items in this list" for the eight benchmarks it will evaluate).
    assert fields["config.benchmarks.names"].default == BenchmarksConfig().names
    assert fields["config.validation.target"].default["steps"] > 0
    assert [p for p, f in fields.items() if not f.required and not f.has_default] == []
    # The UI renders descriptions as HTML: a <name> placeholder would vanish.
    assert [p for p, f in fields.items() if re.search(r"<[A-Za-z/!]", f.description)] == []
    sections = {p.split(".")[1] for p in fields if p.count(".") == 2}
    assert sections == {
        "checkpoints", "benchmarks", "evaluation", "selection", "corpus", "influence", "aggregation",
        "publish", "execution", "validation", "labeling",
    }  # fmt: skip
    assert len(fields) > 50 and all(f.description for f in fields.values())


def test_trigger_is_idempotent_and_reports_an_unfinished_run(remix_deployment: str) -> None:
    key = f"test-{uuid.uuid4().hex}"
    seen: list[str] = []
    first = trigger("remix", {}, idempotency_key=key, timeout_s=0.5, poll_s=0.1, on_state=seen.append)
    second = trigger(remix_deployment, {}, idempotency_key=key, timeout_s=0.2, poll_s=0.1)
    other = trigger("remix", {}, idempotency_key=key + "-other", timeout_s=0, poll_s=0.1)

    unkeyed = trigger("remix", {}, timeout_s=0)
    assert unkeyed.created and "prefect flow-run inspect" in unkeyed.message

    assert first.flow_run_id == second.flow_run_id != other.flow_run_id
    assert (first.created, second.created, other.created) == (True, False, True)
    assert seen == ["Scheduled"]  # no worker polls this pool here
    for result in (first, second):
        assert result.deployment == "remix/remix"
        assert (result.finished, result.ok, result.state_name) == (False, False, "Scheduled")
        assert result.result is None
        assert "still Scheduled" in result.message and "same key" in result.message


def test_deployments_as_registered(remix_deployment: str) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for name, (_, pool) in EXPECTED.items():
            try:
                dep = client.read_deployment_by_name(f"{name}/{name}")
            except Exception:
                assert name == "score-shards", f"{name} was not registered"
                continue
            assert dep.work_pool_name == pool
            assert dep.enforce_parameter_schema
            assert dep.pull_steps == _project()["pull"]
            if name == "remix":
                from prefect.client.schemas.schedules import CronSchedule

                (schedule,) = dep.schedules
                assert isinstance(schedule.schedule, CronSchedule)
                assert (schedule.slug, schedule.active, schedule.schedule.cron) == (
                    "nightly",
                    True,
                    "0 2 * * *",
                )
                assert schedule.schedule.timezone == "UTC"


def test_trigger_rejects_bad_parameters_and_unknown_deployments(remix_deployment: str) -> None:
    with pytest.raises(DeploymentError, match=r"config\.checkpoints.*'uri' is a required property"):
        trigger("remix", {"config": {"checkpoints": {}}}, timeout_s=0)
    with pytest.raises(DeploymentError, match="No deployment named 'nope'"):
        trigger("nope", {}, timeout_s=0)
    with pytest.raises(DeploymentError, match="No deployment 'remix/nope'"):
        parameter_schema("remix/nope")


@pytest.mark.slow
def test_trigger_waits_for_a_worker_to_complete_the_run(prefect_api: None) -> None:
    """A real process worker (`--run-once`) runs a trivial deployed flow; trigger() sees Completed."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.utilities.callables import parameter_schema as flow_schema

    pool = f"automixer-test-{uuid.uuid4().hex[:8]}"
    ensure_pool(pool, "process")
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow(echo_flow)
        client.create_deployment(
            flow_id=flow_id,
            name="echo",
            entrypoint=f"tests/{Path(__file__).name}:echo_flow",
            work_pool_name=pool,
            pull_steps=[
                {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $AUTOMIXER_REPO }}"}}
            ],
            parameter_openapi_schema=flow_schema(echo_flow).model_dump_for_openapi(),
            enforce_parameter_schema=True,
        )
    key = f"test-{uuid.uuid4().hex}"
    queued = trigger("automixer-test-echo/echo", {"value": 7}, idempotency_key=key, timeout_s=0)
    assert not queued.finished

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "AUTOMIXER_REPO": str(REPO)}
    worker = subprocess.Popen(
        worker_command(pool, run_once=True),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        states: list[str] = []
        t0 = time.monotonic()
        done = trigger(
            "automixer-test-echo/echo",
            {"value": 7},
            idempotency_key=key,
            timeout_s=90,
            poll_s=0.25,
            on_state=states.append,
        )
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert done.flow_run_id == queued.flow_run_id and not done.created
    assert (done.finished, done.ok, done.state_name) == (True, True, "Completed"), (done, out[-3000:])
    assert done.result == {"echo": 7}
    assert states[-1] == "Completed" and time.monotonic() - t0 < 90
