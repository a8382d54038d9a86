"""Deployments on a Prefect server: register them, trigger runs, read their parameter schema.

Everything here talks to the API in ``PREFECT_API_URL`` (a Prefect server or Cloud). There is no
point in an ephemeral API here: a deployment only matters where workers poll for it.

- :func:`deploy` registers the deployments of ``deployments/prefect.yaml`` with Prefect's own
  ``prefect deploy`` (the documented path; it loads each entrypoint for its parameter schema).
- :func:`trigger` creates a flow run of a deployment, optionally idempotent (the same key returns
  the same run, so CI re-runs and retries never start a second remix), and waits for a final state.
- :func:`parameter_schema` returns the deployment's ``parameter_openapi_schema`` (what the UI
  renders as the run form).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from automixer_core.errors import AutoMixerError


class DeploymentError(AutoMixerError):
    """A deployment cannot be registered, found or triggered."""


@dataclass
class TriggerResult:
    """What :func:`trigger` saw of the flow run it created (or found by its idempotency key).

    Attributes:
        flow_run_id: the run's id (the same for every trigger with the same idempotency key).
        flow_run_name: the run's generated name.
        deployment: ``flow/deployment`` that was triggered.
        state_name: the last state seen (``Completed``, ``Failed``, ``Scheduled``, ``Late``...).
        state_type: the last state's type (``COMPLETED``, ``FAILED``, ``SCHEDULED``, ``RUNNING``...).
        finished: whether that state is final.
        ok: finished and Completed.
        result: the flow's return value when it was persisted and readable, else ``None``.
        message: one sentence for a person: the state's message, or why the wait ended.
        created: ``False`` when the idempotency key matched a run that already existed.
        url: the run's page in the UI, when ``PREFECT_UI_URL`` is known.
    """

    flow_run_id: str
    flow_run_name: str
    deployment: str
    state_name: str
    state_type: str
    finished: bool
    ok: bool
    result: Any = None
    message: str = ""
    created: bool = True
    url: str | None = None
    states: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# helpers


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise DeploymentError(
            "PREFECT_API_URL is not set",
            expected="the URL of the Prefect server (or Cloud workspace) that the workers poll",
            fix="export PREFECT_API_URL=http://<server>:4200/api (and PREFECT_API_KEY for Cloud)",
        )
    return str(url)


def _client() -> Any:
    from prefect.client.orchestration import get_client

    _api_url()
    return get_client(sync_client=True)


def read_prefect_yaml(prefect_yaml: Path) -> dict[str, Any]:
    """The parsed project file; errors name the file."""
    if not prefect_yaml.is_file():
        raise DeploymentError(
            f"Prefect project file {str(prefect_yaml)!r} does not exist",
            fix="pass the path of deployments/prefect.yaml",
        )
    try:
        data = yaml.safe_load(prefect_yaml.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DeploymentError(f"{prefect_yaml} is not valid YAML: {exc}", fix="fix the YAML syntax") from None
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list):
        raise DeploymentError(
            f"{prefect_yaml} has no `deployments:` list", expected="a Prefect 3 project file"
        )
    return data


def _project_root(prefect_yaml: Path, deployments: list[dict[str, Any]]) -> Path:
    """The folder the entrypoints are relative to: the nearest ancestor holding an entrypoint file."""
    files = [str(d.get("entrypoint", "")).split(":")[0] for d in deployments if d.get("entrypoint")]
    for folder in [prefect_yaml.resolve().parent, *prefect_yaml.resolve().parents]:
        if any((folder / f).is_file() for f in files):
            return folder
    return Path.cwd()


def _prefect_command() -> list[str]:
    return [sys.executable, "-m", "prefect"]


def _subprocess_env() -> dict[str, str]:
    """This process's environment plus the API settings that may only live in Prefect's settings."""
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    env = dict(os.environ)
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    key = PREFECT_API_KEY.value()
    if key:
        env["PREFECT_API_KEY"] = key.get_secret_value() if hasattr(key, "get_secret_value") else str(key)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def _resolve(client: Any, deployment: str) -> Any:
    """A deployment by ``flow/deployment`` or by its bare name when that is unambiguous."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.exceptions import ObjectNotFound

    if "/" in deployment:
        try:
            return client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise DeploymentError(
                f"No deployment {deployment!r} on {_api_url()}",
                fix="register it first (automixer deploy, or prefect deploy --all --prefect-file deployments/prefect.yaml)",
            ) from None
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment]))
    )
    if not found:
        raise DeploymentError(
            f"No deployment named {deployment!r} on {_api_url()}",
            fix="register it first (automixer deploy, or prefect deploy --all --prefect-file deployments/prefect.yaml)",
        )
    if len(found) > 1:
        names = sorted(f"{client.read_flow(d.flow_id).name}/{d.name}" for d in found)
        raise DeploymentError(
            f"Deployment name {deployment!r} is ambiguous on {_api_url()}: {names}",
            fix="pass the full FLOW/DEPLOYMENT name",
        )
    return found[0]


def _full_name(client: Any, dep: Any) -> str:
    return f"{client.read_flow(dep.flow_id).name}/{dep.name}"


def _jsonable(parameters: dict[str, Any]) -> dict[str, Any]:
    from pydantic import BaseModel

    return {
        k: v.model_dump(mode="json", exclude_unset=True) if isinstance(v, BaseModel) else v
        for k, v in parameters.items()
    }


def _http_detail(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            detail = response.json().get("detail")
        except Exception:
            detail = getattr(response, "text", None)
        if detail:
            return str(detail)
    return str(exc)


# ---------------------------------------------------------------------------------------------------
# public API


def deployment_names(prefect_yaml: Path) -> list[str]:
    """The deployment names defined in a project file, in file order."""
    return [str(d.get("name")) for d in read_prefect_yaml(prefect_yaml)["deployments"]]


def deploy(
    prefect_yaml: Path,
    names: list[str] | None = None,
    *,
    root: Path | None = None,
    pool: str | None = None,
    timeout_s: float = 600,
) -> list[str]:
    """Register deployments of ``prefect_yaml`` on the API in ``PREFECT_API_URL``.

    Runs ``prefect deploy`` from the project root (the folder the entrypoints are relative to), so
    what is registered is exactly what the documented command registers. ``names=None`` deploys
    all of them. ``root`` defaults to the nearest folder above the file that holds an entrypoint.
    ``pool`` puts the named deployments on that work pool instead of the file's (``prefect deploy
    --pool``), e.g. score-shards on a process pool of GPU machines rather than Kubernetes.
    Returns the registered deployments as ``flow/deployment``, read back from the API.

    Raises:
        DeploymentError: the API URL is not set, a name is not in the file, an entrypoint file is
            missing, a work pool does not exist (the message gives the command that creates it),
            or ``prefect deploy`` failed (its output is in the message).
    """
    prefect_yaml = Path(prefect_yaml)
    data = read_prefect_yaml(prefect_yaml)
    defined = {str(d.get("name")): d for d in data["deployments"]}
    wanted = list(defined) if names is None else list(names)
    unknown = [n for n in wanted if n not in defined]
    if unknown:
        raise DeploymentError(
            f"{prefect_yaml} defines no deployment named {unknown}",
            expected=f"one of {sorted(defined)}",
        )
    root = Path(root) if root is not None else _project_root(prefect_yaml, list(defined.values()))
    missing_files = [
        f"{n}: {defined[n]['entrypoint']}"
        for n in wanted
        if not (root / str(defined[n].get("entrypoint", "")).split(":")[0]).is_file()
    ]
    if missing_files:
        raise DeploymentError(
            f"Entrypoint files missing under {root}: {missing_files}",
            fix="deploy only the others (pass their names), or add the flow module",
        )
    if pool is not None and names is None:
        raise DeploymentError(
            "A work pool override needs the deployments it applies to",
            fix="pass their names too (automixer deploy --name score-shards --pool <pool>)",
        )
    chosen = [defined[n] if pool is None else _on_pool(defined[n], pool) for n in wanted]
    _check_work_pools(prefect_yaml, chosen)

    with tempfile.TemporaryDirectory(prefix="automixer-deploy-") as tmp:
        project = prefect_yaml.resolve()
        if pool is not None:  # `prefect deploy --pool` moves one deployment only: deploy a copy that
            # names the pool in each chosen deployment, all in one `prefect deploy` (one start-up)
            moved = {str(d.get("name")): d for d in chosen}
            copy = {**data, "deployments": [moved.get(str(d.get("name")), d) for d in data["deployments"]]}
            project = Path(tmp) / "prefect.yaml"
            project.write_text(yaml.safe_dump(copy, sort_keys=False))
        cmd = [*_prefect_command(), "--no-prompt", "deploy", "--prefect-file", str(project)]
        if names is None:
            cmd.append("--all")
        else:
            for n in wanted:
                cmd += ["--name", n]
        env = {**_subprocess_env(), "COLUMNS": "1000"}  # one line per message: names are read back below
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s)
    output = (proc.stdout or "") + (proc.stderr or "")
    created = set(re.findall(r"Deployment '([^']+/[^']+)' successfully created", output))
    if proc.returncode != 0 or len(created) < len(wanted):
        raise DeploymentError(
            f"prefect deploy failed (exit {proc.returncode}, {len(created)} of {len(wanted)} registered): "
            + " ".join(output.split())[-2000:],
            fix="correct the deployment named in the output and deploy again",
        )
    with _client() as client:
        return sorted(_full_name(client, _resolve(client, f)) for f in created)


def _on_pool(deployment: dict[str, Any], pool: str) -> dict[str, Any]:
    """The deployment on work pool ``pool``, keeping its queue and job variables (as ``--pool``)."""
    return {**deployment, "work_pool": {**(deployment.get("work_pool") or {}), "name": pool}}


def _check_work_pools(prefect_yaml: Path, deployments: list[dict[str, Any]]) -> None:
    from prefect.exceptions import ObjectNotFound

    pools = sorted({str((d.get("work_pool") or {}).get("name")) for d in deployments})
    with _client() as client:
        missing = []
        for pool in pools:
            try:
                client.read_work_pool(pool)
            except ObjectNotFound:
                missing.append(pool)
    if missing:
        readme = prefect_yaml.parent / "README.md"
        raise DeploymentError(
            f"Work pool(s) {missing} do not exist on {_api_url()}",
            fix=f"create them first, as {readme} shows (e.g. prefect work-pool create automixer-cpu --type process)",
        )


def parameter_schema(deployment_name: str) -> dict[str, Any]:
    """The deployment's ``parameter_openapi_schema`` (the JSON schema the UI renders as its form)."""
    with _client() as client:
        return dict(_resolve(client, deployment_name).parameter_openapi_schema or {})


@dataclass(frozen=True)
class FormField:
    """One input of a deployment's run form, as the UI renders it from the parameter schema."""

    path: str  # dotted, e.g. ``config.execution.mode``
    type: str  # ``string``, ``integer | null``, ``section``, ``one of local, workpool, dask``...
    default: Any
    description: str  # the field's own, else its section model's; "" when there is none
    required: bool
    has_default: bool = True  # False: no default in the schema (required, or computed by a factory)


def _ref_of(prop: dict[str, Any]) -> str | None:
    candidates = [prop, prop.get("items") or {}]
    for key in ("allOf", "anyOf", "oneOf"):
        candidates += prop.get(key, [])
    for c in candidates:
        if isinstance(c, dict) and "$ref" in c:
            return str(c["$ref"]).rsplit("/", 1)[-1]
    return None


def _type_of(prop: dict[str, Any], ref: str | None) -> str:
    if ref:
        return "section" + (" | null" if any(o.get("type") == "null" for o in prop.get("anyOf", [])) else "")
    if "enum" in prop:
        return "one of " + ", ".join(map(str, prop["enum"]))
    options = prop.get("anyOf") or [prop]
    names = []
    for o in options:
        if "enum" in o:
            names.append("one of " + ", ".join(map(str, o["enum"])))
        elif o.get("type") == "array":
            names.append(f"list of {(o.get('items') or {}).get('type', 'any')}")
        else:
            names.append(str(o.get("type", "any")))
    return " | ".join(names)


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """Every input of the run form of ``schema`` (a parameter schema), sections expanded, in order.

    A field that refers to a section model is described by its own description or the model's (the
    UI merges the referenced definition into the field).
    """
    defs = schema.get("definitions") or schema.get("$defs") or {}
    out: list[FormField] = []

    def walk(props: dict[str, Any], required: list[str], prefix: str, seen: frozenset[str]) -> None:
        for name, prop in props.items():
            ref = _ref_of(prop)
            model = defs.get(ref, {}) if ref else {}
            description = str(prop.get("description") or model.get("description") or "")
            out.append(
                FormField(
                    path=prefix + name,
                    type=_type_of(prop, ref),
                    default=prop.get("default"),
                    description=" ".join(description.split()),
                    required=name in required,
                    has_default="default" in prop,
                )
            )
            if ref and ref not in seen and model:
                walk(model.get("properties", {}), model.get("required", []), f"{prefix}{name}.", seen | {ref})

    walk(schema.get("properties", {}), schema.get("required", []), "", frozenset())
    return out


def local_parameter_schema(entrypoint: str) -> dict[str, Any]:
    """The parameter schema ``prefect deploy`` computes for a flow entrypoint (``path.py:function``)."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema as flow_schema

    return dict(flow_schema(load_flow_from_entrypoint(entrypoint)).model_dump_for_openapi())


def trigger(
    deployment: str,
    parameters: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    timeout_s: float = 3600.0,
    poll_s: float = 5.0,
    on_state: Callable[[str], None] | None = None,
) -> TriggerResult:
    """Create a flow run of ``deployment`` and wait up to ``timeout_s`` for a final state.

    ``deployment`` is ``flow/deployment`` or a bare deployment name. ``parameters`` override the
    deployment's defaults (top-level keys replace whole values) and are validated by the server
    against the flow's schema. With ``idempotency_key``, a second trigger with the same key returns
    the run the first one created (and waits on it) instead of starting another. ``on_state`` is
    called with each new state name. The run is read after 0.5 s, then ever less often, up to every
    ``poll_s``. When the wait ends first, the run is left as it is (it goes on
    on its worker); the result says so, with ``finished=False`` and ``ok=False``.

    Raises:
        DeploymentError: no API URL, no such deployment, or the server refused the parameters.
    """
    from prefect.exceptions import PrefectHTTPStatusError

    with _client() as client:
        dep = _resolve(client, deployment)
        full = _full_name(client, dep)
        started = time.monotonic()
        try:
            run, created = _create_run(client, dep.id, _jsonable(parameters or {}), idempotency_key)
        except PrefectHTTPStatusError as exc:
            raise DeploymentError(
                f"The API refused a run of {full}: {_http_detail(exc)}",
                fix="correct the parameters (automixer_core.config.RunConfig for remix) and trigger again",
            ) from None
        seen: list[str] = []
        deadline = started + max(0.0, timeout_s)
        interval = min(0.5, poll_s)  # a quick answer (a cached re-run, a bad input) comes back quickly
        while True:
            state = run.state
            name = state.name if state is not None else "Pending"
            if not seen or seen[-1] != name:
                seen.append(name)
                if on_state is not None:
                    on_state(name)
            if (state is not None and state.is_final()) or time.monotonic() >= deadline:
                break
            time.sleep(max(0.05, min(interval, deadline - time.monotonic())))
            interval = min(poll_s, interval * 1.5)  # then less often, up to every poll_s
            run = _poll(client, run, deadline)

    finished = state is not None and state.is_final()
    ok = bool(finished and state is not None and state.is_completed())
    result: Any = None
    if state is None:
        message = "the run has no state yet"
    elif not finished:
        again = (
            "trigger again with the same key to wait on the same run"
            if idempotency_key
            else f"follow it with: prefect flow-run inspect {run.id}"
        )
        message = (
            f"flow run {run.name!r} is still {name} after {timeout_s:g}s; it stays queued or running "
            f"on its work pool ({again})"
        )
    else:
        message = state.message or name
        if ok:
            try:
                result = state.result(raise_on_failure=False, retry_result_failure=False)
            except Exception as exc:  # result not persisted, or its storage unreachable from here
                message = f"{message}; the flow's return value is not readable here ({type(exc).__name__})"
    return TriggerResult(
        flow_run_id=str(run.id),
        flow_run_name=str(run.name),
        deployment=full,
        state_name=name,
        state_type=state.type.value if state is not None else "PENDING",
        finished=finished,
        ok=ok,
        result=result,
        message=message,
        created=created,
        url=_ui_url(str(run.id)),
        states=seen,
    )


def _poll(client: Any, run: Any, deadline: float, attempts: int = 10) -> Any:
    """The run as the API has it now; a few transient API errors in a long wait keep the last one."""
    for attempt in range(attempts):
        try:
            return client.read_flow_run(run.id)
        except Exception as exc:  # network blips or a restarting server during an hours-long wait
            if attempt == attempts - 1 or time.monotonic() >= deadline:
                raise DeploymentError(
                    f"Lost the Prefect API while waiting on flow run {run.name!r} ({run.id}): {exc}",
                    fix=f"check PREFECT_API_URL; the run itself goes on (prefect flow-run inspect {run.id})",
                ) from exc
            time.sleep(min(2.0**attempt, 30.0))
    return run


def _create_run(
    client: Any, deployment_id: Any, parameters: dict[str, Any], idempotency_key: str | None
) -> tuple[Any, bool]:
    """``create_flow_run_from_deployment``, also telling whether the server created the run (201)
    or returned the one that already held ``idempotency_key`` (200)."""
    from prefect.client.schemas.actions import DeploymentFlowRunCreate
    from prefect.client.schemas.objects import FlowRun
    from prefect.states import Scheduled, to_state_create

    body = DeploymentFlowRunCreate(
        parameters=parameters, state=to_state_create(Scheduled()), idempotency_key=idempotency_key
    )
    response = client.request(
        "POST",
        "/deployments/{id}/create_flow_run",
        path_params={"id": deployment_id},
        json=body.model_dump(mode="json", exclude_unset=True),
    )
    return FlowRun.model_validate(response.json()), response.status_code == 201


def _ui_url(flow_run_id: str) -> str | None:
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    return f"{ui}/runs/flow-run/{flow_run_id}" if ui else None
