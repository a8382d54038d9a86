"""Evaluation speed: our engine against lm-evaluation-harness's HFLM, same model, same requests.

A random tiny Llama (default: d=128, 4 layers, vocab 4096, about 1.6M parameters) and a BPE
tokenizer trained on the corpus are saved to a temporary folder; both engines load that folder.
For each benchmark, the (context, continuation) requests of a sample of questions go through
``HFLM.loglikelihood`` and through ``automixer_core.evaluation.score_instances`` (tokenization
included on both sides), at the same batch size and thread count, alternating, best of
``--repeats``. tokens/s counts, for both sides alike, the tokens lm-eval feeds per request
(context + continuation minus one), so the ratio is a ratio of wall times. The largest
log-likelihood difference between the two is printed as a check.

    python bench/eval_speed.py --rows 200 --out bench-eval.json
    python bench/eval_speed.py --device cuda --model base --out bench-eval-gpu.json   # on a GPU

``--device`` places both engines' model there (lm-eval's ``HFLM(device=...)``, our
``EvalConfig(device=...)``); both return Python floats, so the wall clock includes the device's
work. ``base`` (d=768, 12 layers, 12 heads, about 116M parameters) is sized for a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from automixer_core.benchmarks import BenchmarkSpec, MultipleChoiceInstance, load_benchmark  # noqa: E402
from automixer_core.evaluation import EvalConfig, ScoreStats, score_instances  # noqa: E402
from automixer_core.proxy import ProxyConfig  # noqa: E402
from automixer_core.proxy.train import build_model  # noqa: E402
from automixer_core.tokenizer import train_bpe_tokenizer  # noqa: E402

MODELS = {
    "tiny": {"hidden": 64, "layers": 2, "vocab": 2048},
    "small": {"hidden": 128, "layers": 4, "vocab": 4096},
    "medium": {"hidden": 256, "layers": 4, "vocab": 4096},
    "base": {"hidden": 768, "layers": 12, "vocab": 4096, "heads": 12},
}


def _texts(data_dir: Path, per_domain: int = 300) -> Iterator[str]:
    for part in sorted((data_dir / "corpus").glob("*/part-*.jsonl")):
        with part.open() as f:
            for i, line in enumerate(f):
                if i >= per_domain:
                    break
                yield json.loads(line)["text"]


def build_checkpoint(data_dir: Path, size: str, out: Path) -> Path:
    """Save a random Llama of the given size with a BPE tokenizer trained on the corpus."""
    spec = MODELS[size]
    tok = train_bpe_tokenizer(_texts(data_dir), vocab_size=spec["vocab"])
    shape = ProxyConfig(
        hidden=spec["hidden"], layers=spec["layers"], heads=spec.get("heads", 4), max_positions=1024
    )
    build_model(shape, vocab_size=len(tok), eos_id=0).save_pretrained(out)  # the proxy's own Llama
    tok.save_pretrained(out)
    return out


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


def time_lm_eval(lm: Any, requests: list[tuple[str, str]]) -> tuple[float, list[float]]:
    from lm_eval.api.instance import Instance

    insts = [
        Instance(request_type="loglikelihood", doc={}, arguments=req, idx=i) for i, req in enumerate(requests)
    ]
    t = time.perf_counter()
    res = lm.loglikelihood(insts, disable_tqdm=True)
    return time.perf_counter() - t, [float(r[0]) for r in res]


def time_ours(
    model: Any, tok: Any, instances: list[MultipleChoiceInstance], cfg: EvalConfig
) -> tuple[float, list[float], ScoreStats]:
    stats = ScoreStats()
    t = time.perf_counter()
    res = score_instances(model, tok, instances, cfg, stats=stats)
    return time.perf_counter() - t, [r.logprob for rs in res for r in rs], stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--benchmarks", default="arc_easy,hellaswag,piqa,winogrande,boolq")
    ap.add_argument("--rows", type=int, default=200, help="questions per benchmark")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--model", choices=sorted(MODELS), default="small")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch's default). 1 by default: on a small shared machine, 2 OpenMP "
        "threads stall whenever another process takes a core, and the timings turn to noise",
    )
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where both engines run the model")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.data_dir / "benchmarks").is_dir():
        sys.exit(f"benchmark data not found under {args.data_dir} (pass --data-dir)")

    from lm_eval.models.huggingface import HFLM

    with tempfile.TemporaryDirectory(prefix="amx-eval-speed-") as tmp:
        ckpt = build_checkpoint(args.data_dir, args.model, Path(tmp) / "ckpt")
        lm = HFLM(pretrained=str(ckpt), device=args.device, batch_size=args.batch_size)
        model = AutoModelForCausalLM.from_pretrained(ckpt).to(args.device).eval()
        tok = AutoTokenizer.from_pretrained(ckpt)
        n_params = sum(p.numel() for p in model.parameters())
        cfg = EvalConfig(batch_size=args.batch_size, device=args.device)

        rows: list[dict[str, Any]] = []
        for name in args.benchmarks.split(","):
            bench = load_benchmark(
                BenchmarkSpec(name=name, data_dir=args.data_dir, eval_limit=args.rows, seed=0)
            )
            insts = bench.eval_instances
            requests = [r for inst in insts for r in inst.requests()]
            time_ours(model, tok, insts[:4], cfg)  # warm-up both
            time_lm_eval(lm, requests[:16])
            ours_t, theirs_t = float("inf"), float("inf")
            ours_ll: list[float] = []
            theirs_ll: list[float] = []
            stats = ScoreStats()
            for _ in range(args.repeats):  # alternate, keep the best of each
                t, ours_ll, stats = time_ours(model, tok, insts, cfg)
                ours_t = min(ours_t, t)
                t, theirs_ll = time_lm_eval(lm, requests)
                theirs_t = min(theirs_t, t)
            max_diff = max(abs(a - b) for a, b in zip(ours_ll, theirs_ll, strict=True))
            rows.append(
                {
                    "benchmark": name,
                    "questions": len(insts),
                    "requests": stats.requests,
                    "tokens": stats.request_tokens,
                    "forward_tokens": stats.forward_tokens,
                    "ours_s": ours_t,
                    "lm_eval_s": theirs_t,
                    "ours_tok_s": stats.request_tokens / ours_t,
                    "lm_eval_tok_s": stats.request_tokens / theirs_t,
                    "ratio": theirs_t / ours_t,
                    "max_abs_logprob_diff": max_diff,
                }
            )

    tot_tokens = sum(r["tokens"] for r in rows)
    tot_ours = sum(r["ours_s"] for r in rows)
    tot_theirs = sum(r["lm_eval_s"] for r in rows)
    total = {
        "benchmark": "TOTAL",
        "questions": sum(r["questions"] for r in rows),
        "requests": sum(r["requests"] for r in rows),
        "tokens": tot_tokens,
        "forward_tokens": sum(r["forward_tokens"] for r in rows),
        "ours_s": tot_ours,
        "lm_eval_s": tot_theirs,
        "ours_tok_s": tot_tokens / tot_ours,
        "lm_eval_tok_s": tot_tokens / tot_theirs,
        "ratio": tot_theirs / tot_ours,
        "max_abs_logprob_diff": max(r["max_abs_logprob_diff"] for r in rows),
    }
    header = f"{'benchmark':<12} {'requests':>8} {'tokens':>8} {'fwd tok':>8} {'ours s':>7} {'lm-eval s':>9} {'ours tok/s':>10} {'lm-eval tok/s':>13} {'ratio':>6} {'max |Δll|':>9}"
    print(
        f"model: random Llama {args.model} ({n_params / 1e6:.2f}M params), batch size {args.batch_size}, "
        f"{torch.get_num_threads()} threads, device {args.device}, best of {args.repeats}"
    )
    print(header)
    print("-" * len(header))
    for r in [*rows, total]:
        print(
            f"{r['benchmark']:<12} {r['requests']:>8} {r['tokens']:>8} {r['forward_tokens']:>8} {r['ours_s']:>7.2f} "
            f"{r['lm_eval_s']:>9.2f} {r['ours_tok_s']:>10.0f} {r['lm_eval_tok_s']:>13.0f} {r['ratio']:>5.2f}x "
            f"{r['max_abs_logprob_diff']:>9.1e}"
        )
    print("ratio = lm-eval seconds / our seconds (= our tokens/s / lm-eval tokens/s)")
    if args.out:
        report = {
            "model": {"size": args.model, "params": n_params, **MODELS[args.model]},
            "batch_size": args.batch_size,
            "device": args.device,
            "device_name": device_name(args.device),
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "rows_per_benchmark": args.rows,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "benchmarks": rows,
            "total": total,
        }
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
