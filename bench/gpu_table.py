"""One markdown table of what ``bench/gpu.sh`` measured, from the files it left in its output folder.

Reads (each optional) ``influence.json`` (bench/gpu_influence.py), ``eval.json``
(bench/eval_speed.py), ``peers.json`` (bench/peers.py), ``tests.xml`` (pytest's JUnit report of
the ``gpu`` tests) and ``status.tsv`` (gpu.sh: one ``step<TAB>status<TAB>detail`` line per step),
and prints a few context lines, one table (every row: our tokens/s against a named reference),
then one line per skipped, failed or stopped step. Standard library only.

    python bench/gpu_table.py /tmp/gpu-bench
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

COLUMNS = [
    "step",
    "model",
    "precision",
    "setting",
    "ours tok/s",
    "reference",
    "ref tok/s",
    "ours/ref",
    "ours/loop",
    "of bound",
    "train MFU",
]


def si(x: float) -> str:
    """1234567 → '1.23M'."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def influence_rows(data: dict, notes: list[str]) -> list[list[str]]:
    env = data.get("env", {})
    peaks = env.get("peak_flops")
    peak_txt = (
        f"MFU peaks bf16 {peaks['bf16'] / 1e12:.0f}, fp32 {peaks['fp32'] / 1e12:.0f} TFLOP/s (dense)"
        if peaks
        else "no MFU off CUDA"
    )
    notes.append(
        f"influence: torch {env.get('torch')}, {env.get('device_name')}, TF32 {'on' if env.get('tf32') else 'off'}, "
        f"{env.get('clock')} clock, best of {env.get('reps')}; {peak_txt}; MFU = 6·N·train tok/s ÷ peak"
    )
    for name, m in data.get("models", {}).items():
        notes.append(
            f"model {name}: {m['params'] / 1e6:.1f}M parameters (d {m['hidden']}, {m['layers']} layers, "
            f"{m['heads']} heads, {m['kv_heads']} KV heads, MLP {m['intermediate']}, vocab {m['vocab']}, tied), "
            f"N = {m['matmul_params'] / 1e6:.1f}M"
        )
    out = []
    for r in data.get("rows", []):
        b, t = r["shape"].split("x")
        mfu = r.get("train_mfu_6n")
        out.append(
            [
                "influence",
                r["model"],
                r["precision"],
                f"{b}×{t} {r['layers']} K={r['K']}",
                si(r["scorer_tok_s"]),
                "train step",
                si(r["train_tok_s"]),
                f"{r['scorer_vs_train']:.2f}× (bound {r['mac_bound']:.2f}×)",
                f"{r['scorer_vs_loop']:.1f}×",
                f"{r['of_bound']:.2f}",
                f"{mfu:.0%}" if mfu is not None else "—",
            ]
        )
    if not data.get("complete"):
        notes.append(f"influence: incomplete, {len(out)} rows measured before it stopped")
    return out


def eval_rows(data: dict, notes: list[str]) -> list[list[str]]:
    m = data.get("model", {})
    notes.append(
        f"eval: random Llama {m.get('size')} ({m.get('params', 0) / 1e6:.1f}M), {data.get('device_name', 'cpu')}, "
        f"batch {data.get('batch_size')}, {data.get('rows_per_benchmark')} questions per benchmark, "
        f"best of {data.get('repeats')}; tok/s = lm-eval's request tokens / wall seconds"
    )
    out = []
    for r in [*data.get("benchmarks", []), data.get("total", {})]:
        if not r:
            continue
        out.append(
            [
                "eval",
                str(m.get("size")),
                "fp32",
                f"{r['benchmark']}, max abs Δll {r['max_abs_logprob_diff']:.1e}",
                si(r["ours_tok_s"]),
                "lm-eval HFLM",
                si(r["lm_eval_tok_s"]),
                f"{r['ratio']:.2f}×",
                "—",
                "—",
                "—",
            ]
        )
    return out


def peers_rows(data: dict, notes: list[str]) -> list[list[str]]:
    a = data.get("args", {})
    notes.append(
        f"peers: model {a.get('model')}, {a.get('docs')} documents ≤{a.get('seq')} tokens, CPU "
        f"({a.get('threads')} threads: bench/peers.py runs on CPU only), best of {a.get('reps')}"
    )
    rows = data.get("rows", [])
    ours = next((r for r in rows if r.get("tool") == "automixer"), None)
    out = []
    for r in rows:
        if r.get("tool") == "automixer" or ours is None:
            continue
        corr = f", Pearson {r['pearson']:.6f}" if "pearson" in r else ""
        out.append(
            [
                "peers",
                str(a.get("model")),
                "fp32",
                f"{r.get('settings')}{corr}",
                si(ours["wall"]),
                r.get("tool", "?") + (f" {r['setting']}" if "setting" in r else ""),
                si(r["wall"]),
                f"{r['ratio_wall']:.2f}×",
                "—",
                "—",
                "—",
            ]
        )
    return out


def tests_line(path: Path) -> str | None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    cases = list(root.iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    passed = len(cases) - len(failed) - len(skipped)
    line = f"gpu tests: {passed} passed, {len(failed)} failed, {len(skipped)} skipped"
    if failed:
        line += " (failed: " + ", ".join(c.get("name", "?") for c in failed) + ")"
    if skipped and not passed:
        msg = skipped[0].find("skipped")
        reason = msg.get("message", "") if msg is not None else ""
        line += f" ({reason})" if reason else ""
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the output folder of bench/gpu.sh")
    args = ap.parse_args()
    notes: list[str] = []
    rows: list[list[str]] = []
    for name, fn in (
        ("influence.json", influence_rows),
        ("eval.json", eval_rows),
        ("peers.json", peers_rows),
    ):
        data = load(args.out / name)
        if isinstance(data, dict):
            rows += fn(data, notes)
    for line in notes:
        print(line)
    print()
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print()
    print(
        "ours/ref: our tok/s ÷ the reference's (influence: ÷ training step, bound = training MACs ÷ scorer "
        "MACs); ours/loop: ÷ the per-example loop (goal ≥ 10×); of bound: (ours/ref) ÷ bound"
    )
    tests = tests_line(args.out / "tests.xml")
    if tests:
        print(tests)
    status = args.out / "status.tsv"
    if status.exists():
        for entry in status.read_text().splitlines():
            step, state, detail = [*entry.split("\t", 2), "", ""][:3]
            if state != "ok":
                print(f"{state}: {step}" + (f": {detail}" if detail else ""))


if __name__ == "__main__":
    main()
