"""Checkpoint discovery as a task."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from automixer_core.checkpoints import discover_checkpoints


@task(name="discover-checkpoints", cache_policy=NO_CACHE)
def discover_task(uri: str, revision: str | list[str] | None = None) -> list[dict[str, Any]]:
    """Checkpoints under ``uri`` ordered by step: ``[{name, uri, step, fingerprint}, ...]``.

    Incomplete checkpoints are logged as warnings and left out; the others go on.
    """
    result = discover_checkpoints(uri, revision=revision)
    logger = get_run_logger()
    for where, reason in result.skipped:
        logger.warning("Skipped %s: %s", where, reason)
    logger.info("Found %d checkpoint(s) under %s", len(result.checkpoints), uri)
    return checkpoint_records(result)


def checkpoint_records(result: Any) -> list[dict[str, Any]]:
    """The checkpoints of a discovery as the flows pass them: ``[{name, uri, step, fingerprint, revision}]``."""
    return [
        {"name": c.name, "uri": c.uri, "step": c.step, "fingerprint": c.fingerprint, "revision": c.revision}
        for c in result.checkpoints
    ]
