"""A flow's progress reaches the sinks of this process, its log and one artifact across phases."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import flow
from prefect.artifacts import Artifact

from flows.progress import EMBEDDED_API_ENV, RunProgress, listening


class Recorder:
    """A progress sink that records every call (what the command line's view receives)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail

    def _add(self, *call: Any) -> None:
        self.calls.append(call)
        if self.fail:
            raise RuntimeError("a broken display")

    def flow_run(self, name: str, url: str | None) -> None:
        self._add("flow_run", name, url)

    def phase(self, name: str, total: int, unit: str, detail: str) -> None:
        self._add("phase", name, total, unit, detail)

    def advance(self, name: str, n: int) -> None:
        self._add("advance", name, n)

    def end(self, name: str, summary: str) -> None:
        self._add("end", name, summary.rpartition("; ")[0])  # less the phase's seconds

    def show(self, kind: str, payload: dict[str, Any]) -> None:
        self._add("show", kind, payload)


@flow(name="automixer-test-progress", flow_run_name="progress test")
def two_phases(key: str) -> float:
    progress = RunProgress(key, ["a", "b"])
    progress.phase("a", 2, "things", "two of them")
    progress.advance("a")
    halfway = float(Artifact.get(key).data)  # type: ignore[union-attr, arg-type]
    progress.advance("a")
    progress.end("a", "2 done")
    progress.show("evaluation", {"x": 1})
    progress.phase("b", 0, "nothing")
    progress.end("b")
    return halfway


def test_phases_reach_the_sink_and_one_artifact_fills_across_phases(prefect_api: None) -> None:
    rec = Recorder()
    with listening(rec):
        halfway = two_phases("test-progress-a")
    assert rec.calls[0][:2] == ("flow_run", "progress test")
    assert rec.calls[1:] == [
        ("phase", "a", 2, "things", "two of them"),
        ("advance", "a", 1),
        ("advance", "a", 1),
        ("end", "a", "2 done"),
        ("show", "evaluation", {"x": 1}),
        ("phase", "b", 0, "nothing", ""),
        ("end", "b", ""),
    ]
    assert halfway == pytest.approx(25.0)  # phase a half done = a quarter of two phases
    assert float(Artifact.get("test-progress-a").data) == 100.0  # type: ignore[union-attr, arg-type]


def test_the_run_url_is_shown_for_a_server_not_for_the_embedded_api(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL

    rec = Recorder()
    with listening(rec):
        two_phases("test-progress-b")
    url = rec.calls[0][2]
    assert url is not None and "/runs/flow-run/" in url  # the test API is a server a browser can open
    monkeypatch.setenv(EMBEDDED_API_ENV, str(PREFECT_API_URL.value()))
    rec = Recorder()
    with listening(rec):
        two_phases("test-progress-c")
    assert rec.calls[0][2] is None  # the command line's own API stops with it: no link


def test_a_broken_display_never_fails_the_run(prefect_api: None) -> None:
    rec = Recorder(fail=True)
    with listening(rec):
        assert two_phases("test-progress-d") == pytest.approx(25.0)
    assert len(rec.calls) == 8  # every call still made
