"""Run names of the units of work (scoring, labelling) that say which checkpoint and which
documents they cover, not a digest: the task list in the Prefect UI reads as the work done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def shard_range(shards: list[dict[str, Any]]) -> str:
    """A batch of shards in words: ``howto.jsonl rows 0–49`` or ``howto.jsonl:0 … math.jsonl:50 (4 shards)``."""
    if not shards:
        return "no shards"
    first, last = shards[0], shards[-1]
    if len(shards) == 1:
        return f"{first['file']} rows {first['start']}–{first['stop'] - 1}"
    return f"{first['file']}:{first['start']} … {last['file']}:{last['start']} ({len(shards)} shards)"


def scoring_name(kind: str = "score") -> Callable[[], str]:
    """A run name for a scoring or labelling unit: ``score checkpoint-40 · howto.jsonl rows 0–49``
    (a ``task_run_name`` or ``flow_run_name``; reads the run's ``checkpoint`` and ``shards``)."""

    def name() -> str:
        from prefect.runtime import flow_run, task_run

        params = task_run.parameters or flow_run.parameters
        checkpoint = params.get("checkpoint")
        where = f" {checkpoint['name']} ·" if isinstance(checkpoint, dict) and "name" in checkpoint else ""
        return f"{kind}{where} {shard_range(list(params.get('shards') or []))}"

    return name
