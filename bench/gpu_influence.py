"""The influence scorer on a GPU: scorer vs training step vs per-example loop, fp32 and bf16.

The GPU counterpart of ``bench/influence.py`` (same three measurements, same ``mac_bound`` and
``timed``; this file adds autocast, GPU-sized models and MFU). For each model, precision, batch
shape B×T, layer selection and K it measures, repetitions interleaved, best of ``--reps``:

- scorer: ``score_documents`` (grad_dot) on one batch of B documents of T tokens, with
  ``InfluenceConfig(autocast="bf16")`` for bf16;
- train: forward + backward with every weight gradient, same batch, under the same autocast
  (no optimizer step);
- loop: the per-example reference (LESS / DataInf code): one document at a time, the selected
  parameters' gradient materialized and flattened, dotted with the K query vectors.

Reported per row: tokens/s of each; scorer/train and scorer/loop (goal ≥ 10×); ``mac_bound``
(training-step MACs / scorer MACs, the scorer's ceiling relative to a training step if every
matmul ran at one rate) and ``of_bound`` = (scorer tok/s ÷ train tok/s) ÷ mac_bound, i.e. the
fraction of that bound reached at the training step's own measured efficiency; the training
step's MFU = 6·N·tok/s ÷ peak, N = Σ in·out over every ``nn.Linear`` (output head included; the
embedding gather is no matmul; attention's T² products are left out, as the 6N rule does). Peaks
(H200 SXM datasheet, dense): bf16 989e12, fp32 67e12 (CUDA cores, TF32 off: the default here),
TF32 494e12 (``--tf32``). The clock is wall time with ``torch.cuda.synchronize`` around each call
(CPU time on CPU, as in bench/influence.py).

Models are the proxy's Llama (``build_model``, tied embeddings) built directly on the device:
``125m`` (d 768, 12 layers, 12 heads, MLP 2560, vocab 32000: 123.7M parameters) and ``1b``
(Llama-3.2-1B's shape with vocab 32000: d 2048, 16 layers, 32 heads, 8 KV heads, MLP 8192:
1.04B parameters). Query vectors are random, drawn on the device (throughput does not depend on
their values). Results are written to ``--out`` after every row, so a run stopped by a timeout
keeps what it measured.

    python bench/gpu_influence.py --device cuda --out influence.json
    python bench/gpu_influence.py --smoke --out /tmp/influence.json      # tiny models, CPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from automixer_core.influence import InfluenceConfig, QueryVectors, score_documents, select_blocks  # noqa: E402
from automixer_core.proxy import ProxyConfig  # noqa: E402
from automixer_core.proxy.train import build_model  # noqa: E402
from bench.influence import mac_bound, timed  # noqa: E402

MODELS: dict[str, dict[str, int]] = {
    "125m": {"hidden": 768, "layers": 12, "heads": 12, "kv_heads": 12, "intermediate": 2560, "vocab": 32000},
    "1b": {"hidden": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "intermediate": 8192, "vocab": 32000},
    # --smoke: the plumbing on a CPU
    "tiny": {"hidden": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 128, "vocab": 512},
    "small": {"hidden": 128, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 256, "vocab": 1024},
}
PEAK_FLOPS = {"bf16": 989e12, "fp32": 67e12, "tf32": 494e12}  # H200 SXM, dense


def build(name: str, device: str) -> torch.nn.Module:
    """The proxy's Llama of the named size, initialised directly on ``device`` (eval mode, fp32)."""
    s = MODELS[name]
    shape = ProxyConfig(
        hidden=s["hidden"],
        layers=s["layers"],
        heads=s["heads"],
        kv_heads=s["kv_heads"],
        intermediate=s["intermediate"],
        max_positions=2048,
    )
    with torch.device(device):
        model = build_model(shape, vocab_size=s["vocab"], eos_id=0)
    return model.eval()


def matmul_params(model: torch.nn.Module) -> int:
    """N of the 6N rule: Σ in·out over every linear layer (the tied output head included)."""
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))


def device_queries(model: torch.nn.Module, layers: str, k: int, device: str) -> QueryVectors:
    """K random query vectors drawn on the device (a 1B model's all_linear K=8 is 33 GB)."""
    g = torch.Generator(device=device).manual_seed(1)
    blocks = {
        b.name: torch.randn(k, *b.shape, generator=g, device=device) * 1e-3
        for b in select_blocks(model, layers)
    }
    return QueryVectors([f"q{i}" for i in range(k)], blocks, "grad_dot", layers)


def autocast_ctx(device: str, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def peak_mb(device: str, fn: Callable[[], object]) -> float | None:
    """Run ``fn`` once; the peak CUDA memory it allocated (MiB), or None off CUDA."""
    if not device.startswith("cuda"):
        fn()
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def bench_row(
    model: torch.nn.Module,
    precision: str,
    layers: str,
    k: int,
    batch: torch.Tensor,
    loop_docs: int,
    reps: int,
    device: str,
    clock: str,
    chunk_mb: float,
) -> dict[str, Any]:
    b, t = batch.shape
    cfg = InfluenceConfig(
        estimator="grad_dot",
        layers=layers,
        max_length=t,
        batch_size=b,
        autocast="bf16" if precision == "bf16" else "off",
        chunk_mb=chunk_mb,
    )
    qv = device_queries(model, layers, k, device)
    blocks = select_blocks(model, layers)
    params = [blk.param for blk in blocks]
    qflat = [qv.blocks[blk.name].flatten(1) for blk in blocks]  # views: no second copy of the queries
    docs = [(str(i), row.tolist()) for i, row in enumerate(batch.cpu())]

    def scorer() -> None:
        score_documents(model, docs, qv, cfg)

    def train() -> None:
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None
        with autocast_ctx(device, precision):
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
            with autocast_ctx(device, precision):
                logits = model(input_ids=x, use_cache=False).logits
            loss = F.cross_entropy(logits[0, :-1].float(), x[0, 1:])
            grads = torch.autograd.grad(loss, params)
            flat = torch.cat([g.flatten() for g in grads]).float()  # the reference's flat gradient
            s, off = torch.zeros(k, device=flat.device), 0
            for q in qflat:
                s += q @ flat[off : off + q.shape[1]]
                off += q.shape[1]
            s.cpu()
        for p in model.parameters():
            p.requires_grad_(True)

    fns = {"scorer": scorer, "train": train, "loop": loop}
    peak = {name: peak_mb(device, fn) for name, fn in fns.items()}  # also the warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(timed(fn, device, clock))
    best = {name: min(v) for name, v in times.items()}
    tok = {
        "scorer": b * t / best["scorer"],
        "train": b * t / best["train"],
        "loop": loop_docs * t / best["loop"],
    }
    macs = mac_bound(model, layers, k, b, t)
    return {
        "precision": precision,
        "layers": layers,
        "K": k,
        "shape": f"{b}x{t}",
        "loop_docs": loop_docs,
        "mac_bound": macs["bound"],
        "of_bound": tok["scorer"] / tok["train"] / macs["bound"],
        "scorer_tok_s": tok["scorer"],
        "train_tok_s": tok["train"],
        "loop_tok_s": tok["loop"],
        "scorer_vs_train": tok["scorer"] / tok["train"],
        "scorer_vs_loop": tok["scorer"] / tok["loop"],
        "train_macs_per_token": macs["train_macs"] / (b * t),
        "best_seconds": best,
        "median_seconds": {name: statistics.median(v) for name, v in times.items()},
        "peak_mb": peak,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", nargs="+", default=["125m", "1b"], choices=list(MODELS))
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    ap.add_argument("--shapes", nargs="+", default=["8x1024", "64x128"], help="batch shapes BxT")
    ap.add_argument("--layers", nargs="+", default=["embed_head", "all_linear"])
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--loop-docs", type=int, default=0, help="documents per loop repetition (0: B/4, 1 to 4)")
    ap.add_argument("--chunk-mb", type=float, default=InfluenceConfig().chunk_mb, help="engine chunk budget")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matmuls for fp32 (default: off)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--clock", choices=["cpu", "wall"], help="default: wall on CUDA, CPU time on CPU")
    ap.add_argument("--smoke", action="store_true", help="tiny models, CPU, small shapes, one repetition")
    ap.add_argument("--out", type=Path, help="JSON results (rewritten after every row)")
    args = ap.parse_args()
    if args.smoke:
        args.device, args.models, args.shapes, args.reps = "cpu", ["tiny", "small"], ["4x64", "16x16"], 1
        args.threads = args.threads or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    clock = args.clock or ("wall" if cuda else "cpu")
    fp32_peak = "tf32" if args.tf32 else "fp32"
    env = {
        "torch": torch.__version__,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device) if cuda else "cpu",
        "cuda": torch.version.cuda,
        "tf32": args.tf32,
        "clock": clock,
        "threads": torch.get_num_threads(),
        "peak_flops": {"bf16": PEAK_FLOPS["bf16"], "fp32": PEAK_FLOPS[fp32_peak]} if cuda else None,
        "reps": args.reps,
        "chunk_mb": args.chunk_mb,
    }
    print(
        f"torch {env['torch']} on {env['device_name']}; clock {clock}; TF32 {'on' if args.tf32 else 'off'}; "
        f"best of {args.reps}",
        flush=True,
    )
    result: dict[str, Any] = {"env": env, "models": {}, "rows": [], "complete": False}

    def save() -> None:
        if args.out:
            tmp = args.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=2))
            tmp.replace(args.out)

    hdr = (
        f"{'model':5} {'prec':4} {'BxT':7} {'layers':10} {'K':>2} {'scorer tok/s':>12} {'train tok/s':>11} "
        f"{'loop tok/s':>10} {'vs train':>8} {'bound':>6} {'of bound':>8} {'vs loop':>7} {'MFU':>5}"
    )
    print(hdr)
    for name in args.models:
        t0 = time.perf_counter()
        model = build(name, args.device)
        n_mm = matmul_params(model)
        result["models"][name] = {
            **MODELS[name],
            "params": sum(p.numel() for p in model.parameters()),
            "matmul_params": n_mm,
            "build_seconds": time.perf_counter() - t0,
        }
        print(
            f"# {name}: {result['models'][name]['params'] / 1e6:.1f}M parameters, N = {n_mm / 1e6:.1f}M",
            flush=True,
        )
        vocab = MODELS[name]["vocab"]
        for precision in args.precisions:
            for shape in args.shapes:
                b, t = (int(x) for x in shape.split("x"))
                g = torch.Generator().manual_seed(0)
                batch = torch.randint(1, vocab, (b, t), generator=g).to(args.device)
                loop_docs = args.loop_docs or max(1, min(4, b // 4))
                for layers in args.layers:
                    for k in args.ks:
                        r = bench_row(
                            model,
                            precision,
                            layers,
                            k,
                            batch,
                            loop_docs,
                            args.reps,
                            args.device,
                            clock,
                            args.chunk_mb,
                        )
                        r["model"] = name
                        if cuda:
                            peak = PEAK_FLOPS["bf16" if precision == "bf16" else fp32_peak]
                            r["train_mfu_6n"] = 6 * n_mm * r["train_tok_s"] / peak
                            r["train_mfu_with_attention"] = (
                                2 * r["train_macs_per_token"] * r["train_tok_s"] / peak
                            )
                        result["rows"].append(r)
                        save()
                        mfu = f"{r['train_mfu_6n']:>5.0%}" if "train_mfu_6n" in r else f"{'—':>5}"
                        print(
                            f"{name:5} {precision:4} {shape:7} {layers:10} {k:>2} {r['scorer_tok_s']:>12.0f} "
                            f"{r['train_tok_s']:>11.0f} {r['loop_tok_s']:>10.0f} {r['scorer_vs_train']:>7.2f}x "
                            f"{r['mac_bound']:>5.2f}x {r['of_bound']:>8.2f} {r['scorer_vs_loop']:>6.1f}x {mfu}",
                            flush=True,
                        )
        del model
        if cuda:
            torch.cuda.empty_cache()
    result["complete"] = True
    save()


if __name__ == "__main__":
    main()
