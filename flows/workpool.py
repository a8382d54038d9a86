"""The work-pool fan-out: one flow run of a deployment per unit, shared by scoring and validation.

Each unit is submitted with an idempotency key built from its digest (submitting twice gives the
same run), awaited by polling the API, and read back from the shared store. A unit whose outputs
are all in the store is not submitted at all; an attempt that ended without its outputs (failed,
crashed, cancelled, or outputs gone) is passed over, so a re-run after a failure starts one new
run for that unit and none for the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from prefect import get_run_logger
from prefect.client.schemas.objects import FlowRun

from automixer_core.errors import ExecutionError

#: Called once per unit when it is done (computed, or found in the store).
OnDone = Callable[[], None]


@dataclass(frozen=True)
class PoolUnit:
    """One flow run of a deployment.

    Attributes:
        key: the idempotency-key base (``automixer-<kind>-<digest>``); attempt ``n`` uses
            ``<key>-<n>``. The digest names what the unit computes and the store it writes to.
        parameters: the flow run's parameters (JSON-ready).
        missing: how many of the unit's outputs the store lacks (0: the unit is done).
        result: the unit's result, given how many outputs its run computed.
    """

    key: str
    parameters: dict[str, Any]
    missing: Callable[[], int]
    result: Callable[[int], dict[str, Any]]


def submit(deployment: str, unit: PoolUnit, tags: list[str]) -> FlowRun:
    """The unit's run: an unfinished or successful run of an earlier attempt, else a new one.

    Raises:
        ExecutionError: no deployment of that name, or 1000 attempts have failed.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    flow_name = deployment.split("/")[0]
    for attempt in range(1000):
        try:
            run = run_deployment(
                name=deployment,
                parameters=unit.parameters,
                timeout=0,
                idempotency_key=f"{unit.key}-{attempt}",
                tags=["automixer", *tags],
                as_subflow=True,
            )
        except ObjectNotFound:
            raise ExecutionError(
                f"No deployment {deployment!r} on the Prefect API",
                fix=f"register it (automixer deploy --name {flow_name}) or correct the execution "
                "section's deployment name",
            ) from None
        state = cast(FlowRun, run).state  # the sync call returns the run itself
        if state is None or not state.is_final():
            return cast(FlowRun, run)
        if state.is_completed() and unit.missing() == 0:
            return cast(FlowRun, run)
    raise ExecutionError(f"Unit {unit.key} has failed 1000 times", fix=f"read the {flow_name} runs' logs")


def run_on_workpool(
    deployment: str,
    units: list[PoolUnit],
    *,
    store: str,
    tags: list[str],
    poll_s: float,
    timeout_s: float | None,
    on_done: OnDone,
) -> tuple[list[dict[str, Any] | None], list[str]]:
    """Run every unit not yet done as a run of ``deployment`` and wait for all of them.

    Returns the results in the order of ``units`` (None for a failed unit) and the failures in
    words (each names its run). Every unit is awaited before this returns.

    Raises:
        ExecutionError: the deployment does not exist, or runs are unfinished after ``timeout_s``
            (a re-run waits on the same runs: the same idempotency keys).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    logger = get_run_logger()
    flow_name = deployment.split("/")[0]
    results: list[dict[str, Any] | None] = [None] * len(units)
    pending: dict[Any, tuple[int, int, FlowRun]] = {}  # run id → (unit index, outputs to compute, run)
    for i, unit in enumerate(units):
        missing = unit.missing()
        if missing == 0:
            results[i] = unit.result(0)
            on_done()
            continue
        run = submit(deployment, unit, tags)
        pending[run.id] = (i, missing, run)
    if pending:
        logger.info("Waiting for %d %s runs on %s", len(pending), flow_name, deployment)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    failed: list[str] = []
    with get_client(sync_client=True) as client:
        while pending:
            ids = list(pending)
            runs = [  # in pages: the API returns at most 200 runs a call
                run
                for start in range(0, len(ids), 200)
                for run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids[start : start + 200])),
                    limit=200,
                )
            ]
            for run in runs:
                if run.state is None or not run.state.is_final():
                    continue
                i, missing, _ = pending.pop(run.id)
                still = units[i].missing()
                if run.state.is_completed() and still == 0:
                    results[i] = units[i].result(missing)
                    on_done()
                elif run.state.is_completed():
                    failed.append(
                        f"{run.name} completed but {still} of its outputs are not in {store} "
                        "(the worker wrote to another store: use a store both can reach, e.g. s3://)"
                    )
                else:
                    failed.append(f"{run.name} ({run.id}) {run.state.name}: {run.state.message or ''}")
            if pending and deadline is not None and time.monotonic() > deadline:
                names = [str(r.name) for _, _, r in pending.values()]
                raise ExecutionError(
                    f"{len(pending)} {flow_name} runs unfinished after {timeout_s:g}s: {names}",
                    fix="check that a worker polls the deployment's work pool; a re-run waits on the "
                    "same runs (same idempotency keys) and keeps every unit already in the store",
                )
            if pending:
                time.sleep(poll_s)
    return results, failed


def run_all_on_workpool(
    deployment: str,
    units: list[PoolUnit],
    *,
    store: str,
    tags: list[str],
    poll_s: float,
    timeout_s: float | None,
    on_done: OnDone,
    what: str,
    rerun: str,
) -> list[dict[str, Any]]:
    """:func:`run_on_workpool` where every unit must succeed: the results in order.

    Raises:
        ExecutionError: units failed (named, after every other unit is awaited and kept); ``what``
            names the units (``scoring``) and ``rerun`` says what a re-run keeps.
    """
    results, failed = run_on_workpool(
        deployment, units, store=store, tags=tags, poll_s=poll_s, timeout_s=timeout_s, on_done=on_done
    )
    if failed:
        raise ExecutionError(
            f"{len(failed)} of {len(units)} {what} units failed: " + "; ".join(failed),
            fix=f"read those runs' logs; {rerun}",
        )
    return [r for r in results if r is not None]
