"""Which proxy size lifts which real benchmark above chance on 2 CPU cores? (issue 10, item 4)

Trains one proxy per size on ``../shared/data/corpus`` (uniform over its domains, every document,
the project's own trainer) and evaluates every saved checkpoint on the paper's eight benchmarks
with the project's evaluation engine. Prints, per size and benchmark, acc_norm minus chance with
its standard error over questions (chance = the mean of 1/choices, per question), the gold
answer's log-likelihood per character, and the wall time of training and evaluation.

A benchmark "shows emergence" at a size when its final acc_norm is more than 2 standard errors
above chance *and* above the first checkpoint's (paired over the same questions): the second test
keeps out benchmarks whose acc_norm sits above 1/choices for a length or position bias alone.

    python bench/real_sweep.py                                   # the default sweep, ~1 hour, 1 thread
    python bench/real_sweep.py --sizes 64x2:0.98 --limit 200     # the demo's size only (~4 minutes)

``--sizes`` lists ``<hidden>x<layers>:<million tokens>``. Each size's run is kept under ``--out``
and reused by a second call (delete the folder to train again).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from automixer_core.benchmarks import BenchmarkSpec, load_benchmark
from automixer_core.benchmarks.registry import PAPER_BENCHMARKS
from automixer_core.checkpoints import load_checkpoint
from automixer_core.evaluation import EvalConfig, evaluate_benchmark
from automixer_core.proxy import ProxyConfig
from automixer_core.proxy.train import train_proxy
from automixer_core.validation.metrics import question_metrics

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEQ, BATCH = 128, 16  # tokens per sequence, sequences per step (the demo's)


def size_config(hidden: int, layers: int, tokens: float, threads: int, checkpoints: int) -> ProxyConfig:
    """A Llama proxy of width ``hidden`` and depth ``layers`` trained on ``tokens`` tokens (the
    demo's recipe otherwise: 16 × 128 tokens a step, lr 3e-3 with 10% warm-up, vocab 4096)."""
    steps = max(checkpoints, round(tokens / (SEQ * BATCH)))
    return ProxyConfig(
        hidden=hidden,
        layers=layers,
        heads=max(1, hidden // 32),
        vocab_size=4096,
        seq_len=SEQ,
        batch_size=BATCH,
        steps=steps,
        warmup=steps // 10,
        lr=3e-3 if hidden <= 128 else 1.5e-3,
        save_every=max(1, steps // checkpoints),
        save_optimizer=False,
        max_docs_per_group=None,
        num_threads=threads,
        seed=0,
    )


def evaluate_run(run_dir: Path, benches: dict[str, Any], batch: int) -> dict[str, dict[int, Any]]:
    """benchmark → step → ``{"acc_norm", "above", "stderr", "gold_ll", "chance", "n", "questions"}``."""
    proxy = json.loads((run_dir / "proxy_run.json").read_text())
    cfg = EvalConfig(batch_size=batch, device="cpu")
    out: dict[str, dict[int, Any]] = {b: {} for b in benches}
    for ck in proxy["checkpoints"]:
        model, tok = load_checkpoint(ck["uri"])
        for name, bench in benches.items():
            res = evaluate_benchmark(model, tok, bench.eval_instances, config=cfg)
            q = question_metrics(res.per_example)
            chance = res.per_example["logprobs"].map(lambda lp: 1.0 / len(lp)).to_numpy()
            above = q["acc_norm"].to_numpy() - chance
            out[name][int(ck["step"])] = {
                "acc_norm": float(q["acc_norm"].mean()),
                "chance": float(chance.mean()),
                "above": float(above.mean()),
                "stderr": float(above.std(ddof=1) / math.sqrt(len(above))),
                "gold_ll": float(q["gold_ll"].mean()),
                "n": len(q),
                "questions": q["acc_norm"].tolist(),
            }
        del model
    return out


def emergence(rows: dict[int, Any]) -> tuple[float, float, bool]:
    """(final − first acc_norm, its paired stderr, emerged?) for one benchmark's steps."""
    steps = sorted(rows)
    first, last = rows[steps[0]], rows[steps[-1]]
    diff = np.asarray(last["questions"]) - np.asarray(first["questions"])
    se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
    gain = float(diff.mean())
    emerged = last["above"] > 2 * last["stderr"] and gain > 2 * se
    return gain, se, emerged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("runs/real-sweep"))
    ap.add_argument("--sizes", default="64x2:2,128x4:2,256x4:1")
    ap.add_argument("--limit", type=int, default=300, help="questions per benchmark (validation splits)")
    ap.add_argument("--checkpoints", type=int, default=3, help="checkpoints saved (and evaluated) per size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    benches = {
        n: load_benchmark(BenchmarkSpec(name=n, data_dir=args.data, eval_limit=args.limit, query_limit=None))
        for n in PAPER_BENCHMARKS
    }
    report: dict[str, Any] = {}
    for item in args.sizes.split(","):
        shape, millions = item.split(":")
        hidden, layers = (int(x) for x in shape.split("x"))
        cfg = size_config(hidden, layers, float(millions) * 1e6, args.threads, args.checkpoints)
        run_dir = args.out / f"d{hidden}x{layers}-{millions}M"
        if not (run_dir / "proxy_run.json").exists():  # else: trained by an earlier call
            train_proxy(cfg, str(args.data / "corpus"), str(run_dir), progress=False, overwrite=True)
        proxy = json.loads((run_dir / "proxy_run.json").read_text())
        train_s, final_loss = proxy["train_seconds"], proxy["checkpoints"][-1]["loss"]
        t1 = time.perf_counter()
        table = evaluate_run(run_dir, benches, batch=32)
        eval_s = time.perf_counter() - t1
        report[run_dir.name] = {
            "params": proxy["num_params"],
            "tokens": proxy["tokens_seen"],
            "final_loss": final_loss,
            "train_s": train_s,
            "eval_s": eval_s,
            "table": table,
        }
        print(
            f"\n## {run_dir.name}: {proxy['num_params'] / 1e6:.2f} M params, {proxy['tokens_seen'] / 1e6:.2f} M "
            f"tokens, final loss {final_loss:.3f}; train {train_s:.0f} s, eval {eval_s:.0f} s "
            f"({args.threads} thread)"
        )
        steps = sorted(next(iter(table.values())))
        print(
            "| benchmark | chance | "
            + " | ".join(f"step {s}" for s in steps)
            + " | gain over first | emerged |"
        )
        print("|---|---|" + "---|" * len(steps) + "---|---|")
        for name, rows in table.items():
            gain, se, emerged = emergence(rows)
            cells = " | ".join(
                f"{rows[s]['acc_norm']:.3f} ({rows[s]['above']:+.3f}±{rows[s]['stderr']:.3f}; "
                f"ll {rows[s]['gold_ll']:.2f})"
                for s in steps
            )
            print(
                f"| {name} | {rows[steps[0]]['chance']:.3f} | {cells} | {gain:+.3f}±{se:.3f} | "
                f"{'**yes**' if emerged else 'no'} |"
            )
        if args.json:
            args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
