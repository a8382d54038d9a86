"""Throughput of the one-pass influence scorer vs a training step vs the per-example loop.

Measured side by side in one process, repetitions interleaved (scorer, training step, loop,
scorer, ...), best of each (medians in the JSON); ratios are of tokens/s. On CPU the clock is
the process's CPU time (``--clock``), which other load on a shared machine barely disturbs.
For each batch shape B×T, model size, layers and K:

- scorer: ``score_documents`` on one batch of B documents of T tokens (grad_dot; frozen
  weights, one forward + one activation backward, contractions in hooks);
- train: forward + backward with weight gradients of the same batch (no optimizer step);
- loop: the per-example reference (LESS / DataInf code): one document at a time, gradient of
  the selected parameters materialized, flattened and dotted with the K query vectors.

``--memory`` also scores N and 10·N documents in fresh subprocesses and reports their peak
RSS (CPU) or peak CUDA memory: memory must not grow with the number of documents.

The table also gives each row's bound (``mac_bound``): training-step MACs / scorer MACs, the
ratio if every matmul ran at one rate, and the measured ratio as a fraction of it.

Usage: python bench/influence.py [--out bench.json] [--memory] [--reps 3] [--threads 1] [--device cpu]

On a shared CPU use --threads 1: tiny models gain little from threads and contend badly.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automixer_core.influence import (
    InfluenceConfig,
    QueryVectors,
    score_documents,
    select_blocks,
)
from automixer_core.proxy import ProxyConfig
from automixer_core.proxy.train import build_model

SIZES = {"d128": 128, "d256": 256}


def make_model(hidden: int, vocab: int, layers: int, device: str) -> LlamaForCausalLM:
    shape = ProxyConfig(
        hidden=hidden, layers=layers, heads=4, kv_heads=2, intermediate=hidden * 2, max_positions=512
    )
    model = build_model(shape, vocab_size=vocab, eos_id=0)  # the proxy's own Llama, seed 0
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers types .to() oddly
    return model.eval()


def random_queries(model: torch.nn.Module, layers: str, k: int, estimator: str = "grad_dot") -> QueryVectors:
    """K random query vectors (throughput does not depend on their values)."""
    g = torch.Generator().manual_seed(1)
    blocks = select_blocks(model, layers)
    return QueryVectors(
        [f"q{i}" for i in range(k)],
        {b.name: torch.randn(k, *b.shape, generator=g) * 1e-3 for b in blocks},
        estimator,
        layers,
    )


def mac_bound(model: torch.nn.Module, layers: str, k: int, b: int, t: int) -> dict[str, float]:
    """Multiply-accumulates of a training step and of the scorer on one B×T batch, and their ratio.

    The ratio is the scorer's speed bound relative to a training step if every matmul ran at the
    same rate. Counted: every linear module's forward (T·o·i per document), the backward to its
    input (same), attention's two T×T products forward (T²·d per layer) and backward (twice that);
    the training step adds the weight gradient of every linear (T·o·i); the scorer adds, per use
    of a selected linear, δᵀa (T·o·i) and its contraction with the K queries (K·o·i) when K ≥ 2,
    or the direct K = 1 contraction (T·o·i). Embedding gathers, softmax and elementwise work are
    left out (the same in both, or negligible).
    """
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    lin = sum(m.in_features * m.out_features for m in linears)  # MACs per token, forward
    cfg: Any = model.config
    attn = 2 * t * int(cfg.hidden_size) * int(cfg.num_hidden_layers)  # T·d for QKᵀ and for AV, per token
    common = 2 * (lin + attn) * b * t + attn * b * t  # forward + activation backward (attention: 2×)
    train = common + lin * b * t
    sel = 0
    for blk in select_blocks(model, layers):
        for use in blk.uses:
            if use.kind == "linear":
                mod: Any = use.module
                o, i = int(mod.out_features), int(mod.in_features)
                sel += b * (t * o * i + (k * o * i if k >= 2 else 0))
    scorer = common + sel
    return {"train_macs": float(train), "scorer_macs": float(scorer), "bound": train / scorer}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str, clock: str) -> float:
    """Seconds of ``fn``: wall time, or CPU time of this process (robust to other load)."""
    now = time.process_time if clock == "cpu" else time.perf_counter
    sync(device)
    t = now()
    fn()
    sync(device)
    return now() - t


def bench_config(
    model: torch.nn.Module,
    layers: str,
    k: int,
    batch: torch.Tensor,
    loop_docs: int,
    reps: int,
    device: str,
    clock: str,
) -> dict:
    b, t = batch.shape
    cfg = InfluenceConfig(estimator="grad_dot", layers=layers, max_length=t, batch_size=b)
    qv = random_queries(model, layers, k)
    docs = [(str(i), row.tolist()) for i, row in enumerate(batch)]
    params = [blk.param for blk in select_blocks(model, layers)]
    qflat = torch.cat(
        [qv.blocks[blk.name].to(device).flatten(1) for blk in select_blocks(model, layers)], dim=1
    )

    def scorer() -> None:
        score_documents(model, docs, qv, cfg)

    def train() -> None:
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None
        out = model(input_ids=batch, labels=batch, use_cache=False)
        out.loss.backward()
        for p in model.parameters():
            p.grad = None

    def loop() -> None:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        for i in range(loop_docs):
            x = batch[i : i + 1]
            logits = model(input_ids=x, use_cache=False).logits
            loss = F.cross_entropy(logits[0, :-1], x[0, 1:])
            grads = torch.autograd.grad(loss, params)
            flat = torch.cat([g.flatten() for g in grads])
            (qflat @ flat).cpu()
        for p in model.parameters():
            p.requires_grad_(True)

    times: dict[str, list[float]] = {"scorer": [], "train": [], "loop": []}
    for warm in (scorer, train, loop):
        warm()
    for _ in range(reps):
        times["scorer"].append(timed(scorer, device, clock))
        times["train"].append(timed(train, device, clock))
        times["loop"].append(timed(loop, device, clock))
    # best of the interleaved repetitions: the least disturbed by other load on a shared machine
    best = {k_: min(v) for k_, v in times.items()}
    med = {k_: statistics.median(v) for k_, v in times.items()}
    tok = {
        "scorer": b * t / best["scorer"],
        "train": b * t / best["train"],
        "loop": loop_docs * t / best["loop"],
    }
    macs = mac_bound(model, layers, k, b, t)
    return {
        "layers": layers,
        "K": k,
        "mac_bound": macs["bound"],
        "of_bound": tok["scorer"] / tok["train"] / macs["bound"],
        "scorer_tok_s": tok["scorer"],
        "train_tok_s": tok["train"],
        "loop_tok_s": tok["loop"],
        "scorer_vs_train": tok["scorer"] / tok["train"],
        "scorer_vs_loop": tok["scorer"] / tok["loop"],
        "median_seconds": med,
        "best_seconds": best,
    }


def memory_child(args: argparse.Namespace) -> None:
    """Score n_docs documents; print peak memory as JSON (run in a fresh process)."""
    torch.set_num_threads(args.threads)
    model = make_model(SIZES[args.sizes[0]], args.vocab, args.layers, args.device)
    g = torch.Generator().manual_seed(2)
    qv = random_queries(model, "all_linear", 8)
    cfg = InfluenceConfig(
        estimator="grad_dot", layers="all_linear", max_length=args.seq, batch_size=args.batch
    )

    def docs():  # a stream: documents are generated lazily
        for i in range(args.memory_child):
            yield str(i), torch.randint(0, args.vocab, (args.seq,), generator=g).tolist()

    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    res = score_documents(model, docs(), qv, cfg)
    out = {
        "n_docs": len(res),
        "seconds": time.perf_counter() - t,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def memory_bench(args: argparse.Namespace) -> dict:
    res = {}
    for n in (args.memory_docs, 10 * args.memory_docs):
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            str(n),
            "--device",
            args.device,
            "--sizes",
            args.sizes[0],
        ]
        cmd += ["--batch", str(args.batch), "--seq", str(args.seq), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        res[str(n)] = json.loads(out)
    a, b = res[str(args.memory_docs)], res[str(10 * args.memory_docs)]
    res["rss_ratio_10x"] = b["max_rss_mb"] / a["max_rss_mb"]
    if "cuda_peak_mb" in a:
        res["cuda_ratio_10x"] = b["cuda_peak_mb"] / a["cuda_peak_mb"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write results as JSON")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument(
        "--shapes",
        nargs="+",
        default=["16x256", "64x32"],
        help="batch shapes BxT to measure (long and short documents)",
    )
    ap.add_argument("--batch", type=int, default=16, help="batch size of the --memory runs")
    ap.add_argument("--seq", type=int, default=256, help="document length of the --memory runs")
    ap.add_argument("--loop-docs", type=int, default=0, help="documents per loop repetition (0: B/4)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        help="cpu: process CPU time (default on CPU: robust to other load); wall: elapsed (default on CUDA)",
    )
    ap.add_argument("--memory", action="store_true", help="also measure peak memory for N vs 10·N documents")
    ap.add_argument("--memory-docs", type=int, default=32)
    ap.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    torch.set_num_threads(args.threads)
    clock = args.clock or ("wall" if args.device.startswith("cuda") else "cpu")
    print(f"clock: {clock} time; threads: {args.threads}; device: {args.device}")
    rows = []
    hdr = (
        f"{'model':6} {'BxT':7} {'layers':10} {'K':>2} {'scorer tok/s':>12} {'train tok/s':>11} "
        f"{'loop tok/s':>10} {'vs train':>8} {'bound':>6} {'of bound':>8} {'vs loop':>7}"
    )
    print(hdr)
    print("-" * len(hdr))
    for shape in args.shapes:
        b, t = (int(x) for x in shape.split("x"))
        for size in args.sizes:
            model = make_model(SIZES[size], args.vocab, args.layers, args.device)
            g = torch.Generator().manual_seed(0)
            batch = torch.randint(0, args.vocab, (b, t), generator=g).to(args.device)
            loop_docs = args.loop_docs or max(1, b // 4)
            for layers in ("embed_head", "all_linear"):
                for k in (1, 8):
                    r = bench_config(model, layers, k, batch, loop_docs, args.reps, args.device, clock)
                    r.update(model=size, shape=shape)
                    rows.append(r)
                    print(
                        f"{size:6} {shape:7} {layers:10} {k:>2} {r['scorer_tok_s']:>12.0f} {r['train_tok_s']:>11.0f} "
                        f"{r['loop_tok_s']:>10.0f} {r['scorer_vs_train']:>7.2f}x {r['mac_bound']:>5.2f}x {r['of_bound']:>8.2f} "
                        f"{r['scorer_vs_loop']:>6.1f}x",
                        flush=True,
                    )
    result: dict = {
        "device": args.device,
        "clock": clock,
        "threads": args.threads,
        "shapes": args.shapes,
        "vocab": args.vocab,
        "n_layers": args.layers,
        "rows": rows,
    }
    if args.memory:
        result["memory"] = memory_bench(args)
        m = result["memory"]
        print(
            f"\npeak RSS, all_linear K=8: {args.memory_docs} docs {m[str(args.memory_docs)]['max_rss_mb']:.0f} MB, "
            f"{10 * args.memory_docs} docs {m[str(10 * args.memory_docs)]['max_rss_mb']:.0f} MB "
            f"(ratio {m['rss_ratio_10x']:.2f})"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
