"""How many object-store requests a remix makes, by S3 operation (DECISIONS 51).

A real S3 HTTP endpoint (``moto_server`` on 127.0.0.1, started here), the store on it, and with
``--corpus-on-s3`` the corpus too (uploaded first, not counted). Two checkpoints of a proxy run
(default: the demo's, ``automixer demo`` first), the real corpus's first ``--docs`` rows per file
cut to 300 characters, three benchmarks. Every request the S3 client sends is counted by
operation, for the first remix and for a re-run that finds everything done.

    python bench/store_requests.py [--checkpoints runs/demo/proxy] [--docs 10] [--corpus-on-s3]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def _moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return proc, url
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=Path, default=REPO / "runs" / "demo" / "proxy")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--docs", type=int, default=10, help="rows per corpus file")
    ap.add_argument("--corpus-on-s3", action="store_true")
    args = ap.parse_args()

    found = sorted(p for p in args.checkpoints.glob("checkpoint-*") if p.is_dir())
    if len(found) < 2:
        raise SystemExit(f"need two checkpoints under {args.checkpoints}: run `automixer demo` first")
    moto, url = _moto()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=url,
        AWS_DEFAULT_REGION="us-east-1",
    )
    import s3fs

    from automixer.runtime import embedded_prefect
    from automixer_core.config import RunConfig
    from automixer_core.store import Store
    from flows.remix import remix_flow

    calls: collections.Counter[str] = collections.Counter()
    real = s3fs.S3FileSystem._call_s3

    async def counting(self: Any, method: Any, *a: Any, **k: Any) -> Any:
        calls[str(getattr(method, "__name__", method))] += 1
        return await real(self, method, *a, **k)

    tmp = Path(tempfile.mkdtemp(prefix="automixer-requests-"))
    try:
        s3fs.S3FileSystem(client_kwargs={"endpoint_url": url}).mkdir("bench")
        run = tmp / "run"
        for ckpt in found[:2]:
            shutil.copytree(
                ckpt, run / ckpt.name, ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt")
            )
        corpus = str(args.data / "corpus")
        if args.corpus_on_s3:
            corpus = Store("s3://bench").put_dir(args.data / "corpus", "corpus")
        cfg = RunConfig.model_validate(
            {
                "store": "s3://bench/store",
                "checkpoints": {"uri": str(run)},
                "benchmarks": {
                    "names": ["arc_easy", "piqa", "winogrande"],
                    "data_dir": str(args.data),
                    "eval_limit": 8,
                    "query_limit": 8,
                },
                "corpus": {
                    "uri": corpus,
                    "max_docs_per_file": args.docs,
                    "shard_docs": 5,
                    "max_doc_chars": 300,
                },
                "influence": {"estimator": "grad_dot", "hessian_samples": 16, "batch_size": 8},
                "aggregation": {"bootstrap": 50},
            }
        )
        s3fs.S3FileSystem._call_s3 = counting  # type: ignore[method-assign]
        rows = []
        with embedded_prefect():
            for name in ("first remix", "re-run (nothing new)"):
                calls.clear()
                start = time.perf_counter()
                out = remix_flow(cfg)
                rows.append((name, time.perf_counter() - start, dict(calls), out["counts"]))
    finally:
        moto.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    ops = sorted({op for _, _, c, _ in rows for op in c}, key=lambda op: -rows[0][2].get(op, 0))
    print(f"\ncorpus {'on S3' if args.corpus_on_s3 else 'local'}; store on S3 (moto_server {url})\n")
    print("| run | wall s | requests | " + " | ".join(ops) + " | computed |")
    print("|---|---|---|" + "---|" * len(ops) + "---|")
    for name, wall, c, counts in rows:
        cells = [str(c.get(op, 0)) for op in ops]
        computed = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"| {name} | {wall:.1f} | {sum(c.values())} | " + " | ".join(cells) + f" | {computed} |")


if __name__ == "__main__":
    main()
