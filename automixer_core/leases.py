"""Leases: one unit of work computed by one run at a time, across processes and machines.

A unit (an evaluation, a set of query vectors, a shard batch's scores) is computed by whoever holds
its lease ``leases/<unit digest>.json`` in the store. Others wait until the unit's output appears
(then they read it) or until the lease expires (a holder that was killed stops renewing it; then
one of them takes it over). The holder renews the lease every ``ttl/3`` from a background thread.

Taking a lease is exclusive: on a local store by hard-linking a finished file into place (which
fails when the lease exists, and never shows a half-written lease); on an object
store (no create-if-absent there) by writing a unique token and reading it back after a short
settle delay, the last writer winning, which makes two holders at once unlikely but not
impossible: the outputs are written atomically to deterministic keys, so a rare double
computation costs time, never correctness.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from automixer_core.store import Store

LEASE_PREFIX = "leases"


@dataclass(frozen=True)
class LeaseConfig:
    """Attributes:
    ttl_s: a lease not renewed for this long is expired (its holder is presumed dead); default
        60 s, or ``AUTOMIXER_LEASE_TTL_S``. A run resumed after a kill waits this long at most.
    poll_s: how often a waiting run looks for the output or an expired lease.
    settle_s: object stores: the delay between writing a token and reading it back.
    """

    ttl_s: float = field(default_factory=lambda: float(os.environ.get("AUTOMIXER_LEASE_TTL_S", "60")))
    poll_s: float = 1.0
    settle_s: float = 0.5


def _key(unit: str) -> str:
    return f"{LEASE_PREFIX}/{unit}.json"


def _try_take(store: Store, unit: str, owner: str, cfg: LeaseConfig) -> bool:
    body = json.dumps({"owner": owner, "expires": time.time() + cfg.ttl_s})
    key = _key(unit)
    if store.is_local:
        path = store.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{owner}"
        with open(tmp, "w") as f:
            f.write(body)
        try:  # a hard link appears whole or not at all, and fails when the lease exists
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True
    if store.exists(key):
        return False
    store.write_text(key, body)
    time.sleep(cfg.settle_s)
    try:
        return bool(json.loads(store.read_text(key)).get("owner") == owner)
    except Exception:
        return False


def _expired(store: Store, unit: str) -> bool:
    try:
        return float(json.loads(store.read_text(_key(unit)))["expires"]) < time.time()
    except Exception:  # gone, or half-written by a holder that died while writing it
        return True


def _renew(store: Store, unit: str, owner: str, cfg: LeaseConfig) -> None:
    body = json.dumps({"owner": owner, "expires": time.time() + cfg.ttl_s})
    if store.is_local:
        path = store.path(_key(unit))
        tmp = f"{path}.{owner}"
        with open(tmp, "w") as f:
            f.write(body)
        os.replace(tmp, path)
    else:
        store.write_text(_key(unit), body)


@contextlib.contextmanager
def unit_lease(
    store: Store, unit: str, done: Callable[[], bool], cfg: LeaseConfig | None = None
) -> Iterator[bool]:
    """Hold ``unit``'s lease for the block, unless its output appears first.

    Yields True when this run must compute the unit (it holds the lease; ``done()`` was false
    after taking it), False when another run finished it meanwhile (``done()`` became true).

    Args:
        done: whether the unit's output is already in the store.
    """
    cfg = cfg or LeaseConfig()
    owner = uuid.uuid4().hex
    while True:
        if done():
            yield False
            return
        if _try_take(store, unit, owner, cfg):
            break
        if _expired(store, unit):
            with contextlib.suppress(Exception):
                store.delete(_key(unit))  # the holder died: take it over on the next turn
            continue
        time.sleep(cfg.poll_s)
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(cfg.ttl_s / 3):
            with contextlib.suppress(Exception):
                _renew(store, unit, owner, cfg)

    beat = threading.Thread(target=heartbeat, name=f"lease-{unit[:12]}", daemon=True)
    beat.start()
    try:
        yield not done()
    finally:
        stop.set()
        beat.join()
        with contextlib.suppress(Exception):
            store.delete(_key(unit))
