"""Leases: concurrent runs compute a unit once; a dead holder's lease expires and is taken over."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from automixer_core.leases import LeaseConfig, unit_lease
from automixer_core.store import Store

FAST = LeaseConfig(ttl_s=1.5, poll_s=0.05, settle_s=0.05)
#: For the races: a TTL no scheduling delay reaches (a starved heartbeat must not expire the lease),
#: and on object stores a settle delay far above the time between two threads' writes.
RACE = LeaseConfig(ttl_s=60.0, poll_s=0.05, settle_s=0.05)
RACE_S3 = LeaseConfig(ttl_s=60.0, poll_s=0.05, settle_s=1.0)


def _race(store: Store, n: int = 4, cfg: LeaseConfig = RACE) -> list[bool]:
    """``n`` threads want the same unit at once; each that holds the lease computes (0.3 s) and writes
    the output; returns who computed."""
    computed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def worker() -> None:
        start.wait()
        with unit_lease(store, "unit-a", lambda: store.exists("out/a.json"), cfg) as mine:
            if mine:
                time.sleep(0.3)
                store.write_json("out/a.json", {"ok": True})
            with lock:
                computed.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return computed


def test_concurrent_runs_compute_a_unit_once(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    computed = _race(store)
    assert sorted(computed) == [False, False, False, True]
    assert not store.exists("leases/unit-a.json")  # released


def test_concurrent_runs_on_s3_compute_a_unit_once(s3_bucket: str) -> None:
    store = Store(f"{s3_bucket}/am")
    assert sum(_race(store, n=3, cfg=RACE_S3)) == 1


def test_a_dead_holders_lease_expires_and_is_taken_over(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.write_text("leases/unit-a.json", json.dumps({"owner": "killed", "expires": time.time() + 0.5}))
    t0 = time.monotonic()
    with unit_lease(store, "unit-a", lambda: False, FAST) as mine:
        assert mine
        assert json.loads(store.read_text("leases/unit-a.json"))["owner"] != "killed"
    assert time.monotonic() - t0 >= 0.4  # it waited for the expiry, not less


def test_a_live_holder_renews_its_lease_past_the_ttl(tmp_path: Path) -> None:
    """Held for twice the TTL, the lease was renewed (its expiry moved forward)."""
    store = Store(str(tmp_path))
    with unit_lease(store, "unit-a", lambda: False, FAST) as mine:
        assert mine
        first = json.loads(store.read_text("leases/unit-a.json"))["expires"]
        time.sleep(2 * FAST.ttl_s)
        assert json.loads(store.read_text("leases/unit-a.json"))["expires"] > first  # renewed


def test_an_existing_output_needs_no_lease(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    with unit_lease(store, "unit-b", lambda: True, FAST) as mine:
        assert mine is False
    assert not store.exists("leases/unit-b.json")
