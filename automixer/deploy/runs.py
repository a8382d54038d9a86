"""Flow runs of a deployment: :func:`trigger` creates a flow run of a deployment, optionally idempotent
(the same key returns the same run, so CI re-runs and retries never start a second remix), and waits
for a final state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from automixer.deploy.api import DeploymentError, _client, _full_name, _http_detail, _jsonable, _resolve


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
