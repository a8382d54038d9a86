"""What the scale-out engines cost: the remix of 16 shards in `local`, `workpool` and `dask` modes.

One run, side by side, on the same inputs: a tiny proxy checkpoint trained here, 8 domain files of
the real corpus cut to 16 shards, evaluations and query vectors computed once beforehand (so each
timed remix is the scoring fan-out, the aggregation and the publish). Each mode starts from the
same store, without scores or mixtures; engines are started before the clock runs:

- local: the remix flow's own thread, one unit after another;
- workpool: one `score-shards` flow run per unit (16 by default) on a process pool served by ``--workers`` process workers
  (each flow run is a fresh Python process: Prefect's process worker);
- dask: a LocalCluster of ``--workers`` processes, each declaring one GPU resource.

Every mode must publish the same mixture (checked). Prints wall seconds and ratios to local.

    python bench/execution_overhead.py [--workers 2] [--docs-per-shard 10] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from automixer.runtime import embedded_prefect, prepare_environment  # noqa: E402


def _corpus(src: Path, dest: Path, files: int, docs: int) -> None:
    for part in sorted(src.glob("*/part-*.jsonl"))[:files]:
        out = dest / part.parent.name / part.name
        out.parent.mkdir(parents=True, exist_ok=True)
        with part.open() as f, out.open("w") as g:
            for i, line in enumerate(f):
                if i >= docs:
                    break
                g.write(line)


def _copy_store(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("scores", "mixtures"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--workers", type=int, default=2, help="process workers / Dask workers")
    ap.add_argument("--docs-per-shard", type=int, default=10)
    ap.add_argument("--shards-per-task", type=int, default=1, help="shards per scoring unit (flow run)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="automixer-bench-exec-"))
    prepare_environment(root / "prefect")
    os.environ.setdefault("AUTOMIXER_CACHE", str(root / "cache"))
    data = Path(args.data)
    with embedded_prefect(root / "prefect"):
        _run(args, root, data)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def _run(args: argparse.Namespace, root: Path, data: Path) -> None:
    from distributed import LocalCluster

    from automixer.deploy import deploy
    from automixer_core.config import RunConfig
    from automixer_core.proxy import train_proxy
    from flows.remix import remix_flow
    from tests.fixtures_proxy import PROXY_RUN_CONFIG
    from tests.prefect_workers import ensure_pool, process_workers

    corpus = root / "corpus"
    _corpus(data / "corpus", corpus, files=8, docs=2 * args.docs_per_shard)  # 8 files × 2 shards = 16
    # the test suite's tiny proxy, trained for fewer steps: one checkpoint
    proxy = PROXY_RUN_CONFIG.model_copy(update={"steps": 30, "warmup": 5, "save_every": 30})
    train_proxy(proxy, str(data / "corpus"), str(root / "run"), progress=False)

    def config(store: Path, **execution: Any) -> RunConfig:
        return RunConfig.model_validate(
            {
                "store": str(store),
                "checkpoints": {"uri": str(root / "run")},
                "benchmarks": {
                    "names": ["arc_easy", "piqa", "winogrande"],
                    "data_dir": str(data),
                    "eval_limit": 16,
                    "query_limit": 16,
                },
                "corpus": {
                    "uri": str(corpus),
                    "shard_docs": args.docs_per_shard,
                    "shards_per_task": args.shards_per_task,
                },
                "influence": {"hessian_samples": 32, "batch_size": 8},
                "aggregation": {"bootstrap": 50},
                "execution": {"poll_s": 0.5, **execution},
            }
        )

    warm = root / "store-warm"
    first = remix_flow(config(warm))
    assert first["counts"]["shards_scored"] == 16, first["counts"]
    print(f"prepared: 1 checkpoint, 16 shards × {args.docs_per_shard} documents, 3 benchmarks")

    pool = "automixer-bench-gpu"
    ensure_pool("automixer-cpu")
    ensure_pool(pool)
    deploy(REPO / "deployments" / "prefect.yaml", ["score-shards"], pool=pool)

    times: dict[str, list[float]] = {"local": [], "workpool": [], "dask": []}
    with (
        process_workers(pool, args.workers, root / "logs"),
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            resources={"GPU": 1},
            dashboard_address=None,
        ) as cluster,
    ):
        modes: dict[str, dict[str, Any]] = {
            "local": {},
            "workpool": {"mode": "workpool"},
            "dask": {"mode": "dask", "dask_address": cluster.scheduler_address},
        }
        for rep in range(args.repeats):
            for mode, execution in modes.items():
                store = root / f"store-{mode}-{rep}"
                _copy_store(warm, store)
                t0 = time.perf_counter()
                result = remix_flow(config(store, **execution))
                times[mode].append(time.perf_counter() - t0)
                assert result["counts"]["shards_scored"] == 16, (mode, result["counts"])
                assert result["id"] == first["id"], f"{mode} published another mixture"
                a = json.loads((store / "mixtures" / first["id"] / "mixture.json").read_text())
                b = json.loads((warm / "mixtures" / first["id"] / "mixture.json").read_text())
                del a["provenance"]["created_at"], b["provenance"]["created_at"]
                assert a == b, f"{mode}: mixture.json differs"

    best = {m: min(t) for m, t in times.items()}
    units = -(-16 // args.shards_per_task)
    print(
        f"\nremix of 16 shards in {units} units of {args.shards_per_task} (scoring + publish), "
        f"best of {args.repeats}, {args.workers} workers"
    )
    print(f"{'mode':10} {'wall s':>8} {'vs local':>9} {'per unit s':>11}")
    for mode, t in best.items():
        extra = (t - best["local"]) / units
        print(f"{mode:10} {t:8.2f} {t / best['local']:8.2f}x {extra:+11.2f}")
    print("per unit: (mode - local) / units, the engine's cost per scoring unit; same mixture in every mode")


if __name__ == "__main__":
    main()
