"""Two remixes of one config at once: is any unit computed twice, and what does the second run cost?

One run, side by side, on the same inputs and one fresh store per row. Every remix is a separate OS
process, ``python -m automixer remix cfg.yaml --store ...``; all of them share one Prefect API,
started here (ephemeral, on SQLite under the work folder) or the one in ``PREFECT_API_URL``, so no
child starts a server of its own:

- one: a single remix into a fresh store (the reference for wall time and for the units of work);
- two, one after the other: a second remix started when the first has exited (it finds the
  mixture and ends with "nothing new");
- two at once: both started at the same moment into one fresh store. Each unit (an evaluation, a
  set of query vectors, a shard batch) must be computed by one of them while the other waits on
  its lease and reads the result: the units summed over both must equal the single run's.

Units are parsed from each child's "ran N evaluations, M query-vector builds and K shard scorings"
line. Prints wall seconds, CPU seconds per process, the units of each process, "units computed
twice" (the row's sum over its processes minus the single run's), and wall(two at once) /
wall(one). Also checks that every process published the same mixture (id and mixture.json), that
no lease is left in the store, and that the shared API holds one ``remix`` flow run per process.

Inputs: the first ``--checkpoints`` checkpoints of runs/demo/proxy (copied; else a tiny proxy is
trained like tests/fixtures_proxy.py), three benchmarks of ../shared/data and the first
``--docs-per-file`` documents (``--max-doc-chars`` characters) of each corpus file, in shards of
``--shard-docs``. About 3-4 minutes on 2 cores with the defaults (``--repeats`` multiplies that).

    python bench/concurrent_remix.py [--checkpoints 3] [--eval-limit 16] [--docs-per-file 20] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from automixer.runtime import embedded_prefect, prepare_environment  # noqa: E402

UNITS = ("evaluations", "queries", "shards")
RAN = re.compile(r"ran (\d+) evaluations, (\d+) query-vector builds and (\d+) shard scorings")
MIXTURE = re.compile(r"^mixture: (\S+)$", re.M)


@dataclass
class Child:
    """One finished ``automixer remix`` process."""

    wall: float
    cpu: float
    rc: int
    out: str
    units: dict[str, int] = field(default_factory=dict)
    nothing_new: bool = False
    mixture: str | None = None

    @classmethod
    def parse(cls, wall: float, cpu: float, rc: int, out: str) -> Child:
        child = cls(wall, cpu, rc, out)
        if m := RAN.search(out):
            child.units = dict(zip(UNITS, map(int, m.groups()), strict=True))
        elif "Nothing new" in out:
            child.units, child.nothing_new = dict.fromkeys(UNITS, 0), True
        if m := MIXTURE.search(out):
            child.mixture = m.group(1)  # <store>/mixtures/<id>/mixture.json
        return child


@dataclass
class Row:
    """One row of the table: its wall time (start of the first process to exit of the last) and processes."""

    wall: float
    children: list[Child]


def _checkpoints(args: argparse.Namespace, root: Path, data: Path) -> tuple[Path, str]:
    """The first ``args.checkpoints`` checkpoints of ``args.proxy`` copied under root, else a tiny proxy trained here."""
    dest = root / "proxy"
    src = Path(args.proxy)
    found = sorted(
        (p for p in src.glob("checkpoint-*") if (p / "config.json").exists()),
        key=lambda p: int(p.name.rpartition("-")[2]),
    )
    if len(found) >= args.checkpoints:
        for p in found[: args.checkpoints]:
            shutil.copytree(p, dest / p.name, ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt"))
        return dest, f"first {args.checkpoints} checkpoints of {src}"
    from automixer_core.proxy import train_proxy
    from tests.fixtures_proxy import PROXY_RUN_CONFIG

    every = 15
    proxy = PROXY_RUN_CONFIG.model_copy(update={"steps": every * args.checkpoints, "save_every": every})
    train_proxy(proxy, str(data / "corpus"), str(dest), progress=False)
    return dest, f"{args.checkpoints} checkpoints of a tiny proxy trained here ({src} has fewer)"


def _config(args: argparse.Namespace, root: Path, data: Path, proxy: Path) -> Path:
    raw: dict[str, Any] = {
        "store": str(root / "store-unused"),  # every run passes --store
        "checkpoints": {"uri": str(proxy)},
        "benchmarks": {
            "names": args.benchmarks.split(","),
            "data_dir": str(data),
            "eval_limit": args.eval_limit,
            "query_limit": args.query_limit,
        },
        "corpus": {
            "uri": str(data / "corpus"),
            "shard_docs": args.shard_docs,
            "max_docs_per_file": args.docs_per_file,
            "max_doc_chars": args.max_doc_chars,
        },
        "influence": {"hessian_samples": args.hessian_samples},
        "aggregation": {"bootstrap": args.bootstrap},
    }
    path = root / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _launch(cfg: Path, store: Path, root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], float]:
    cmd = [sys.executable, "-m", "automixer", "remix", str(cfg), "--store", str(store)]
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, time.perf_counter()


def _wait(proc: subprocess.Popen[str], t0: float, timeout: float) -> Child:
    """Read the process's output until it exits (killed after ``timeout`` s); its wall and CPU seconds."""
    assert proc.stdout is not None
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, with its own CPU time
    finally:
        timer.cancel()
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Child.parse(wall, usage.ru_utime + usage.ru_stime, proc.returncode, out)


def _mixture_json(uri: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(uri).read_text())
    del doc["provenance"]["created_at"]
    return doc


def _remix_runs() -> int:
    """How many ``remix`` flow runs the shared API holds."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["remix"])), limit=200)
    return len(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument(
        "--proxy", default=str(REPO / "runs" / "demo" / "proxy"), help="a run folder of checkpoints"
    )
    ap.add_argument("--checkpoints", type=int, default=3, help="how many checkpoints (the first, by step)")
    ap.add_argument("--benchmarks", default="arc_easy,piqa,winogrande")
    ap.add_argument("--eval-limit", type=int, default=16)
    ap.add_argument("--query-limit", type=int, default=8)
    ap.add_argument("--docs-per-file", type=int, default=20, help="corpus.max_docs_per_file")
    ap.add_argument("--shard-docs", type=int, default=5, help="corpus.shard_docs")
    ap.add_argument("--max-doc-chars", type=int, default=2000, help="corpus.max_doc_chars")
    ap.add_argument("--hessian-samples", type=int, default=16)
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument(
        "--threads", type=int, default=None, help="OMP_NUM_THREADS of every child (default: unset)"
    )
    ap.add_argument(
        "--repeats", type=int, default=1, help="repeat every row; wall is the best, units must agree"
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds a child may run")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="work folder (default: a temporary one, removed)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--verbose", action="store_true", help="print every child's output")
    args = ap.parse_args()
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if any(args.workdir.iterdir()):
            ap.error(f"--workdir {args.workdir} is not empty (every store must start fresh)")
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="automixer-bench-concurrent-"))).resolve()
    prepare_environment(root / "prefect")
    os.environ.setdefault("AUTOMIXER_CACHE", str(root / "cache"))
    data = Path(args.data).resolve()
    try:
        proxy, source = _checkpoints(args, root, data)
        cfg = _config(args, root, data, proxy)
        with embedded_prefect(root / "prefect") as api:
            ok = _run(args, root, cfg, api, source)
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


def _run(args: argparse.Namespace, root: Path, cfg: Path, api: str, source: str) -> bool:
    env = {**os.environ, "PREFECT_API_URL": api, "PYTHONPATH": str(REPO)}
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    # untimed: the first start of the CLI reads its files from disk
    subprocess.run([sys.executable, "-m", "automixer", "benchmarks"], cwd=root, env=env, capture_output=True)
    load = os.getloadavg()[0]

    def remix(store: Path) -> Child:
        return _wait(*_launch(cfg, store, root, env), args.timeout)

    rows: dict[str, list[Row]] = {"one": [], "two, one after the other": [], "two at once": []}
    problems: list[str] = []
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        single = remix(root / f"store-one-{rep}")
        rows["one"].append(Row(time.perf_counter() - t0, [single]))

        store = root / f"store-sequential-{rep}"
        t0 = time.perf_counter()
        first = remix(store)
        second = remix(store)
        rows["two, one after the other"].append(Row(time.perf_counter() - t0, [first, second]))

        store = root / f"store-concurrent-{rep}"
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:  # both started before either is waited on
            started = [_launch(cfg, store, root, env) for _ in range(2)]
            pair = list(pool.map(lambda s: _wait(s[0], s[1], args.timeout), started))
        rows["two at once"].append(Row(time.perf_counter() - t0, pair))
        leases = store / "leases"
        if leases.exists() and (left := sorted(p.name for p in leases.iterdir())):
            problems.append(f"{len(left)} lease file(s) left in {leases}: {left[:3]}")

    for name, reps in rows.items():
        for rep, row in enumerate(reps):
            for i, c in enumerate(row.children):
                if args.verbose or c.rc != 0 or not c.units:
                    print(f"\n--- {name} (repeat {rep}, P{i + 1}): exit {c.rc}, {c.wall:.1f}s ---\n{c.out}")
                if c.rc != 0 or not c.units:
                    problems.append(f"{name} (repeat {rep}), P{i + 1}: exit {c.rc}, no units line")
    if any("no units line" in p for p in problems):
        print("\nFAILED: " + "; ".join(problems))
        return False

    single = rows["one"][0].children[0]
    print(
        f"\nremix of the {source}: {args.benchmarks} (eval_limit {args.eval_limit}, query_limit "
        f"{args.query_limit}); corpus: {args.docs_per_file} docs per file, {args.max_doc_chars} chars, "
        f"shards of {args.shard_docs}; hessian_samples {args.hessian_samples}, bootstrap {args.bootstrap}"
    )
    print(
        f"{os.cpu_count()} cores (load average {load:.1f} before), OMP_NUM_THREADS "
        f"{env.get('OMP_NUM_THREADS', 'unset')}; every process a fresh `python -m automixer remix` "
        f"on one Prefect API ({api}); best of {args.repeats}\n"
    )
    head = (
        f"{'row':25} {'wall s':>7} {'vs one':>7} {'cpu s':>6}  "
        f"{'per process: units eval,query,shard (wall s/cpu s)':52} {'sum':>9} {'twice':>6}"
    )
    print(head)
    print("-" * len(head))
    one = min(r.wall for r in rows["one"])
    twice: dict[str, int] = {}
    for name, reps in rows.items():
        wall = min(r.wall for r in reps)
        sums = [{k: sum(c.units[k] for c in r.children) for k in UNITS} for r in reps]
        if any(t != sums[0] for t in sums):
            problems.append(f"{name}: the units differ between repeats: {sums}")
        twice[name] = max(sum(t[k] - single.units[k] for k in UNITS) for t in sums)
        per = "  ".join(
            f"P{i + 1} {','.join(str(c.units[k]) for k in UNITS)} ({c.wall:.0f}/{c.cpu:.0f}"
            + (", nothing new)" if c.nothing_new else ")")
            for i, c in enumerate(reps[0].children)
        )
        total = ",".join(str(sums[0][k]) for k in UNITS)
        cpu = sum(c.cpu for c in reps[0].children)
        print(f"{name:25} {wall:7.1f} {wall / one:6.2f}x {cpu:6.0f}  {per:52} {total:>9} {twice[name]:6d}")
    print(
        "units: evaluations, query-vector builds, shard scorings; twice: the row's sum minus the single "
        "run's (0: no unit computed twice); cpu and per process: the first repeat; wall: the best"
    )
    print(f"wall(two at once) / wall(one) = {min(r.wall for r in rows['two at once']) / one:.2f}")

    # within a repeat, the same mixture from every process (the code may change between repeats);
    # one remix flow run per process on the shared API
    children = [c for reps in rows.values() for r in reps for c in r.children]
    same = True
    for rep in range(args.repeats):
        mine = {
            f"{name} P{i + 1}": c for name, reps in rows.items() for i, c in enumerate(reps[rep].children)
        }
        ids = {
            who: c.mixture and Path(c.mixture).parent.name for who, c in mine.items()
        }  # .../<id>/mixture.json
        ref = rows["one"][rep].children[0]
        if len(set(ids.values())) != 1 or None in ids.values():
            problems.append(f"repeat {rep}: the processes published different mixtures: {ids}")
        elif any(_mixture_json(c.mixture or "") != _mixture_json(ref.mixture or "") for c in mine.values()):
            problems.append(f"repeat {rep}: a mixture.json differs from the single run's")
        else:
            continue
        same = False
    for name, n in twice.items():
        if n:
            problems.append(f"{name}: {n} unit(s) computed twice")
    seen = _remix_runs()
    if seen != len(children):
        problems.append(f"the shared API holds {seen} remix flow runs for {len(children)} processes")
    print(
        f"same mixture from every process: {'yes' if same else 'NO'}; "
        f"remix flow runs on the shared API: {seen} for {len(children)} processes; "
        f"leases left: {'yes' if any('lease' in p for p in problems) else 'none'}"
    )
    if problems:
        print("PROBLEMS: " + "; ".join(problems))
        return False
    return True


if __name__ == "__main__":
    main()
