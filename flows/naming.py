"""Flow-run names that say what a run does (``remix 3 benchmarks → demo/store``: the store's last
two path parts), not Prefect's random ``clay-lynx``: the run list in the UI reads as a log of the
work, and a name stays short enough for one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _field(config: Any, name: str) -> Any:
    return config.get(name) if isinstance(config, dict) else getattr(config, name, None)


def run_name(kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable for flows whose ``config`` parameter is a run config."""

    def name() -> str:
        from prefect.runtime import flow_run

        config = flow_run.parameters.get("config")
        store = _field(config, "store")
        benchmarks = _field(config, "benchmarks")
        names = _field(benchmarks, "names") if benchmarks is not None else None
        custom = _field(benchmarks, "custom") if benchmarks is not None else None
        count = len(names or []) + len(custom or [])
        what = f" {count} benchmark{'s' if count != 1 else ''}" if count else ""
        where = "/".join(str(store).rstrip("/").split("/")[-2:]) if store else ""
        return f"{kind}{what} → {where}" if where else kind

    return name
