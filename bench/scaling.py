"""Wall time and peak memory of the whole remix as the corpus and the model grow (issue 12, item 4a).

Corpora: the first ``--base-docs`` documents of every domain file of ``../shared/data/corpus``
(1×), repeated ``m`` times for each of ``--multiples`` (copy 0 as it is, every other copy with two
neighbouring words swapped inside the scored prefix, so texts, ids and digests differ while the
length stays the same), one jsonl file per domain as the shared corpus has. Models: one small
proxy per ``--sizes`` entry (``d<width>``, ``--layers`` decoder layers, a few steps and
``--checkpoints`` checkpoints, trained once with the project's trainer under ``OUT/proxy-<size>``;
the sizes after the first reuse the first one's tokenizer).

Grid: every multiple with the first size, every size with the first multiple. Each point is one
``automixer remix CONFIG --json`` process with a fresh store and a fresh Prefect home (so
evaluation, query vectors, scoring and publish all run, and the embedded Prefect server starts
each time), ``max_docs_per_file: null`` (every document scored) and one shard per ``--base-docs``
documents, so the number of shards grows with the corpus. The process tree is polled with psutil
every 0.2 s: the CLI's own resident memory (the engine), the Prefect server's (uvicorn) and their
sum at the same instant; its CPU seconds; the phase times from its "✓ phase: ...; 12.3 s" lines
and the CLI's peak within each phase (its RSS over time: ``OUT/runs/<size>-<m>x/rss.csv``).

    .venv/bin/python bench/scaling.py --out runs/scaling                       # the default grid
    .venv/bin/python bench/scaling.py --multiples 1 --sizes d128 --base-docs 10  # one point, to size it

Proxies and corpora under ``--out`` are reused by a second call; stores are not (each run is fresh).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLI = Path(sys.executable).parent / "automixer"
PHASE = re.compile(r"✓ (\w+): .*?([0-9]+(?:\.[0-9]+)?) s\s*$", re.M)
MB = 1024 * 1024


# --- inputs ----------------------------------------------------------------------------------


def base_documents(data: Path, per_file: int) -> dict[str, list[dict[str, Any]]]:
    """domain folder → the first ``per_file`` rows of its file(s), in file order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((data / "corpus").glob("*/*.jsonl")):
        rows = out.setdefault(path.parent.name, [])
        for line in path.read_text().split("\n"):  # not splitlines: texts hold U+2028
            if len(rows) >= per_file:
                break
            if line.strip():
                rows.append(json.loads(line))
    return out


def perturb(text: str, rng: random.Random, prefix_chars: int) -> str:
    """``text`` with two neighbouring words swapped inside its first ``prefix_chars`` characters
    (the part that is scored), separators kept: same length, nearly the same tokens."""
    parts = re.split(r"(\s+)", text)  # words at even indices, separators at odd ones
    words, pos = [], 0
    for i, p in enumerate(parts):
        if i % 2 == 0 and p and pos < prefix_chars:
            words.append(i)
        pos += len(p)
    pairs = [(a, b) for a, b in itertools.pairwise(words) if parts[a] != parts[b]]
    if not pairs:
        return text + " ."  # one-word documents: a suffix
    a, b = pairs[rng.randrange(len(pairs))]
    parts[a], parts[b] = parts[b], parts[a]
    return "".join(parts)


def write_corpus(base: dict[str, list[dict[str, Any]]], folder: Path, m: int, prefix_chars: int) -> int:
    """``m`` copies of ``base`` under ``folder/<domain>/part-00000.jsonl``; the number of documents."""
    if (folder / "done.json").exists():
        return int(json.loads((folder / "done.json").read_text())["documents"])
    shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(m)
    n = 0
    for domain, rows in base.items():
        (folder / domain).mkdir(parents=True)
        with (folder / domain / "part-00000.jsonl").open("w") as f:
            for k in range(m):
                for row in rows:
                    text = row["text"] if k == 0 else perturb(row["text"], rng, prefix_chars)
                    doc = {**row, "id": f"{row['id']}-c{k}", "text": text}
                    f.write(json.dumps(doc, ensure_ascii=False) + "\n")
                    n += 1
    (folder / "done.json").write_text(json.dumps({"documents": n, "multiple": m}))
    return n


def train_proxies(args: argparse.Namespace, sizes: list[str]) -> dict[str, dict[str, Any]]:
    """size → its proxy_run.json (trained here unless ``OUT/proxy-<size>`` holds one)."""
    from automixer_core.proxy import ProxyConfig
    from automixer_core.proxy.train import train_proxy

    out: dict[str, dict[str, Any]] = {}
    tokenizer: str | None = None
    for size in sizes:
        run_dir = args.out / f"proxy-{size}"
        if not (run_dir / "proxy_run.json").exists():
            hidden = int(size.lstrip("d"))
            cfg = ProxyConfig(
                hidden=hidden,
                layers=args.layers,
                heads=max(2, hidden // 32),
                vocab_size=4096,
                seq_len=128,
                batch_size=8,
                steps=args.steps,
                warmup=args.steps // 10,
                lr=3e-3 if hidden <= 128 else 1.5e-3,
                save_every=max(1, args.steps // args.checkpoints),
                save_optimizer=False,
                max_docs_per_group=200,
                tokenizer=tokenizer,
                tokenizer_docs=500,
                num_threads=args.threads,
                seed=0,
            )
            t = time.perf_counter()
            train_proxy(cfg, str(args.data / "corpus"), str(run_dir), progress=False, overwrite=True)
            print(f"trained proxy {size} in {time.perf_counter() - t:.0f} s", flush=True)
        out[size] = json.loads((run_dir / "proxy_run.json").read_text())
        tokenizer = tokenizer or out[size]["checkpoints"][0]["uri"]
    return out


def run_config(args: argparse.Namespace, run_dir: Path, proxy: Path, corpus: Path) -> Path:
    raw = {
        "store": str(run_dir / "store"),
        "checkpoints": {"uri": str(proxy)},
        "benchmarks": {
            "names": args.benchmarks.split(","),
            "data_dir": str(args.data),
            "eval_limit": args.eval_limit,
            "query_limit": args.query_limit,
        },
        "evaluation": {"device": "cpu"},
        "corpus": {
            "uri": str(corpus),
            "max_docs_per_file": None,
            "max_doc_chars": args.max_doc_chars,
            "shard_docs": args.shard_docs or args.base_docs,
        },
        "influence": {"hessian_samples": args.hessian_samples, "max_length": args.max_length},
        "aggregation": {"bootstrap": 200},
    }
    path = run_dir / "run.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- one measured run ------------------------------------------------------------------------


def is_server(p: psutil.Process) -> bool:
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return False
    return "uvicorn" in cmd or "prefect.server" in cmd


def phase_peaks(lines: list[tuple[float, str]], samples: list[tuple[float, int]]) -> dict[str, float]:
    """The CLI's peak RSS (MB) in each stretch: ``start-up`` (before the first phase), each phase
    (from its ▸ line to its ✓ line) and ``exit`` (after the last)."""
    marks = [(t, line[2:].split(":")[0]) for t, line in lines if line.startswith("▸")]
    ends = {line[2:].split(":")[0]: t for t, line in lines if line.startswith("✓")}
    spans = [("start-up", 0.0, marks[0][0] if marks else float("inf"))]
    spans += [(name, t, ends.get(name, float("inf"))) for t, name in marks]
    spans.append(("exit", max(ends.values(), default=float("inf")), float("inf")))
    out = {}
    for name, a, b in spans:
        inside = [rss for t, rss in samples if a <= t <= b]
        if inside:
            out[name] = max(inside) / MB
    return out


def measure(cmd: list[str], cwd: Path, env: dict[str, str], poll_s: float) -> dict[str, Any]:
    """Run ``cmd``; wall time, peak RSS (CLI alone, server, whole tree), CPU seconds, the phase
    times it prints, and when its first and last phase line came (start-up and shut-down cost)."""
    out_f = (cwd / "stdout.txt").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out_f, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.perf_counter() - t0, line))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    peak = {"cli": 0, "server": 0, "tree": 0, "tree_minus_server": 0}
    cpu_cli = 0.0
    samples: list[tuple[float, int]] = []  # (seconds since start, the CLI's own RSS)
    while proc.poll() is None:
        cli = server = other = 0
        try:
            cli = root.memory_info().rss
            t = root.cpu_times()
            cpu_cli = t.user + t.system
            children = root.children(recursive=True)
        except psutil.Error:
            children = []
        for c in children:
            try:
                rss = c.memory_info().rss
            except psutil.Error:
                continue
            if is_server(c):
                server += rss
            else:
                other += rss
        samples.append((time.perf_counter() - t0, cli))
        peak["cli"] = max(peak["cli"], cli)
        peak["server"] = max(peak["server"], server)
        peak["tree"] = max(peak["tree"], cli + server + other)
        peak["tree_minus_server"] = max(peak["tree_minus_server"], cli + other)
        time.sleep(poll_s)
    wall = time.perf_counter() - t0
    reader.join(timeout=10)
    out_f.close()
    stderr = "".join(line for _, line in lines)
    (cwd / "stderr.txt").write_text("".join(f"{t:8.2f} {line}" for t, line in lines))
    (cwd / "rss.csv").write_text("s,cli_mb\n" + "".join(f"{t:.2f},{b / MB:.1f}\n" for t, b in samples))
    first = next((t for t, line in lines if line.startswith("▸")), float("nan"))
    last = next((t for t, line in reversed(lines) if line.startswith("✓ publish")), float("nan"))
    return {
        "rc": proc.returncode,
        "wall_s": wall,
        "startup_s": first,
        "shutdown_s": wall - last,
        "cpu_cli_s": cpu_cli,
        "peak_mb": {k: v / MB for k, v in peak.items()},
        "phases_s": {name: float(s) for name, s in PHASE.findall(stderr)},
        "phase_peak_mb": phase_peaks(lines, samples),
        "stdout": (cwd / "stdout.txt").read_text(),
        "stderr_tail": stderr[-2000:],
    }


def one(args: argparse.Namespace, size: str, m: int, corpus: Path, docs: int) -> dict[str, Any]:
    run_dir = args.out / "runs" / f"{size}-{m}x"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cfg = run_config(args, run_dir, args.out / f"proxy-{size}", corpus)
    env = {
        **os.environ,
        "PREFECT_HOME": str(run_dir / "prefect"),  # a fresh server database every run
        "COLUMNS": "400",  # rich wraps its phase lines at 80 columns when piped
    }
    env.pop("PREFECT_API_URL", None)
    load = os.getloadavg()[0]
    r = measure([str(CLI), "remix", str(cfg), "--json"], run_dir, env, args.poll)
    r["load_1min"] = [load, os.getloadavg()[0]]  # other jobs on the machine, before and after
    if r["rc"] != 0:
        print(r["stderr_tail"], file=sys.stderr)
        raise SystemExit(f"remix {size} {m}x failed with exit code {r['rc']} (see {run_dir}/stderr.txt)")
    result = json.loads(r.pop("stdout"))
    mixture = json.loads(Path(str(result["uri"]).removeprefix("file://")).read_text())
    r.pop("stderr_tail")
    return {
        "size": size,
        "multiple": m,
        "documents": docs,
        "scored_docs": sum(g["documents"] for g in mixture["groups"]),
        "tokens_scored": sum(g["tokens"] for g in mixture["groups"]),
        "artifact_checkpoints": len({p["checkpoint"] for p in mixture["provenance"]["artifacts"]})
        if isinstance(mixture["provenance"].get("artifacts"), list)
        else None,
        "counts": result.get("counts"),
        **r,
    }


# --- the table -------------------------------------------------------------------------------


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| size | multiple | documents | tokens scored | shard scorings | wall s | start-up s | evaluate s "
        "| queries s | score s | publish s | shut-down s | CLI CPU s | peak RSS MB: CLI / server / tree | wall s per 1k docs "
        "| score s per 1k docs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ph, pk = r["phases_s"], r["peak_mb"]
        lines.append(
            f"| {r['size']} | {r['multiple']}× | {r['scored_docs']:,} | {r['tokens_scored']:,} | "
            f"{(r['counts'] or {}).get('shards_scored', '?')} | {r['wall_s']:.1f} | {r['startup_s']:.1f} | "
            f"{ph.get('evaluate', float('nan')):.1f} | {ph.get('queries', float('nan')):.1f} | "
            f"{ph.get('score', float('nan')):.1f} | {ph.get('publish', float('nan')):.1f} | "
            f"{r['shutdown_s']:.1f} | {r['cpu_cli_s']:.0f} | {pk['cli']:.0f} / {pk['server']:.0f} / {pk['tree']:.0f} | "
            f"{1000 * r['wall_s'] / r['scored_docs']:.1f} | "
            f"{1000 * ph.get('score', float('nan')) / r['scored_docs']:.1f} |"
        )
    return "\n".join(lines)


def phase_table(results: list[dict[str, Any]]) -> str:
    names = ["start-up", "evaluate", "queries", "score", "publish", "exit"]
    lines = [
        "| size | multiple | " + " | ".join(f"CLI peak MB in {n}" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for r in results:
        pk = r.get("phase_peak_mb", {})
        cells = " | ".join(f"{pk[n]:.0f}" if n in pk else "–" for n in names)
        lines.append(f"| {r['size']} | {r['multiple']}× | {cells} |")
    return "\n".join(lines)


def ratios(results: list[dict[str, Any]], size: str) -> str:
    rows = sorted((r for r in results if r["size"] == size), key=lambda r: r["multiple"])
    if len(rows) < 2:
        return ""
    a = rows[0]
    out = []
    for b in rows[1:]:
        k = b["multiple"] / a["multiple"]
        out.append(
            f"{b['multiple']}×/{a['multiple']}× ({size}, {k:.0f}× the documents): "
            f"wall {b['wall_s'] / a['wall_s']:.2f}×, CLI CPU {b['cpu_cli_s'] / a['cpu_cli_s']:.2f}×, score phase "
            f"{b['phases_s'].get('score', 0) / max(a['phases_s'].get('score', 0), 1e-9):.2f}×, "
            f"score + publish "
            f"{(b['phases_s'].get('score', 0) + b['phases_s'].get('publish', 0)) / max(a['phases_s'].get('score', 0) + a['phases_s'].get('publish', 0), 1e-9):.2f}×, "
            f"CLI peak RSS {b['peak_mb']['cli'] / a['peak_mb']['cli']:.2f}× "
            f"({b['peak_mb']['cli'] - a['peak_mb']['cli']:+.0f} MB), "
            f"tree peak RSS {b['peak_mb']['tree'] / a['peak_mb']['tree']:.2f}×"
        )
    return "\n".join(f"- {line}" for line in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("runs/scaling"))
    ap.add_argument("--base-docs", type=int, default=20, help="documents per domain file at 1×")
    ap.add_argument("--multiples", default="1,4,16")
    ap.add_argument("--sizes", default="d128,d256,d512", help="proxy widths d<hidden>")
    ap.add_argument("--layers", type=int, default=2, help="decoder layers of every proxy")
    ap.add_argument("--steps", type=int, default=30, help="proxy training steps (8 sequences of 128 tokens)")
    ap.add_argument("--checkpoints", type=int, default=3, help="checkpoints saved per proxy")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the proxy training")
    ap.add_argument("--benchmarks", default="arc_easy,piqa")
    ap.add_argument("--eval-limit", type=int, default=20)
    ap.add_argument("--query-limit", type=int, default=16)
    ap.add_argument("--max-doc-chars", type=int, default=2000)
    ap.add_argument("--max-length", type=int, default=256, help="influence context window (tokens)")
    ap.add_argument("--hessian-samples", type=int, default=64)
    ap.add_argument("--shard-docs", type=int, default=None, help="documents per shard (default: --base-docs)")
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between memory samples")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = ap.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    multiples = [int(x) for x in args.multiples.split(",")]
    sizes = args.sizes.split(",")

    t_all = time.perf_counter()
    train_proxies(args, sizes)
    base = base_documents(args.data, args.base_docs)
    corpora = {
        m: (args.out / f"corpus-{m}x", write_corpus(base, args.out / f"corpus-{m}x", m, args.max_doc_chars))
        for m in multiples
    }
    grid = [(sizes[0], m) for m in multiples] + [(s, multiples[0]) for s in sizes[1:]]
    results = []
    for size, m in grid:
        folder, docs = corpora[m]
        r = one(args, size, m, folder, docs)
        results.append(r)
        print(
            f"{size} {m}×: {r['scored_docs']} documents, {r['tokens_scored']:,} tokens, wall {r['wall_s']:.1f} s, "
            f"phases {r['phases_s']}, peak MB {{{', '.join(f'{k}: {v:.0f}' for k, v in r['peak_mb'].items())}}}",
            flush=True,
        )
        (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(table(results))
    print()
    print(phase_table(results))
    print()
    print(ratios(results, sizes[0]))
    print(f"\ntotal bench wall time {time.perf_counter() - t_all:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
