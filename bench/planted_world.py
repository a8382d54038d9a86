"""Does the demo proxy learn the planted skills? Accuracy per planted benchmark per checkpoint.

Generates a planted-skill world (:mod:`automixer_core.worlds.planted`), trains the demo's proxy on
its corpus (the ``automixer demo`` ProxyConfig, uniform over domains unless ``--weights``), and
evaluates every checkpoint on every planted benchmark's validation split with the project's
evaluation engine. Prints acc ± stderr (and acc_norm) per benchmark per step, and the wall time.

    python bench/planted_world.py                       # default world, 1 thread, ~2-3 minutes
    python bench/planted_world.py --wrong-facts 2 --threads 2
    python bench/planted_world.py --entities 100,200,300,400 --docs 200 --steps 480
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from automixer_core.benchmarks import BenchmarkSpec, load_benchmark
from automixer_core.checkpoints import load_checkpoint
from automixer_core.evaluation import EvalConfig, evaluate_benchmark
from automixer_core.proxy import ProxyConfig
from automixer_core.proxy.config import demo_proxy_config
from automixer_core.proxy.train import train_proxy
from automixer_core.worlds import PlantedWorldConfig, write_planted_world


def proxy_config(steps: int, threads: int, weights: dict[str, float] | None) -> ProxyConfig:
    """The ProxyConfig ``automixer demo`` trains (:func:`demo_proxy_config`), on ``threads`` threads."""
    return demo_proxy_config(steps, num_threads=threads, save_optimizer=False, group_weights=weights)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="world seed")
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--entities", default=None, help="comma-separated entities per skill (default: the ramp)")
    ap.add_argument("--docs", type=int, default=None, help="documents per skill domain")
    ap.add_argument("--facts-per-doc", type=int, default=None)
    ap.add_argument("--filler", type=int, default=None, help="filler sentences per skill document")
    ap.add_argument("--wrong-facts", type=int, default=None)
    ap.add_argument("--zipf", type=float, default=None, help="exponent of fact frequency by entity rank")
    ap.add_argument("--distractor-entities", type=int, default=None)
    ap.add_argument("--distractor-facts", type=int, default=None, help="facts per distractor document")
    ap.add_argument(
        "--distractor-prose", type=int, default=None, help="prose sentences per distractor document"
    )
    ap.add_argument("--steps", type=int, default=480)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--weights", default=None, help="JSON {domain: weight} (default: uniform over domains)")
    ap.add_argument("--out", default=None, help="keep the world and the proxy run here (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write the table as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    overrides: dict[str, object] = {"seed": args.seed}
    if args.k is not None:
        overrides["k"] = args.k
    if args.entities:
        overrides["entities_per_skill"] = tuple(int(x) for x in args.entities.split(","))
        overrides.setdefault("k", len(overrides["entities_per_skill"]))  # type: ignore[arg-type]
    for key, value in (
        ("docs_per_domain", args.docs),
        ("facts_per_doc", args.facts_per_doc),
        ("filler_per_doc", args.filler),
        ("wrong_facts", args.wrong_facts),
        ("zipf", args.zipf),
        ("distractor_entities", args.distractor_entities),
        ("distractor_facts_per_doc", args.distractor_facts),
        ("distractor_prose_per_doc", args.distractor_prose),
    ):
        if value is not None:
            overrides[key] = value
    world_cfg = PlantedWorldConfig(**overrides)  # type: ignore[arg-type]

    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="planted-bench-"))
    try:
        world_dir, run_dir = base / "world", base / "proxy"
        world = write_planted_world(world_dir, world_cfg, overwrite=True)
        print(f"World: {world_dir}  {world['total_characters'] / 1e6:.2f} M characters")
        for d, info in world["domains"].items():
            print(f"  {d:10s} {info['role']:11s} docs {info['documents']:4d}  chars {info['characters']:7d}")
        t_world = time.perf_counter()

        weights = json.loads(args.weights) if args.weights else None
        result = train_proxy(
            proxy_config(args.steps, args.threads, weights),
            str(world_dir / "corpus"),
            str(run_dir),
            progress=False,
            overwrite=True,
        )
        t_train = time.perf_counter()
        print(
            f"Proxy: {result.num_params:,} params, {result.tokens_seen:,} tokens, "
            f"final loss {result.final_loss:.3f}, {t_train - t_world:.0f}s"
        )

        benches = {
            name: load_benchmark(
                BenchmarkSpec(
                    name=name, custom_yaml=world_dir / info["yaml"], eval_limit=None, query_limit=None
                )
            )
            for name, info in world["benchmarks"].items()
        }
        table: dict[str, dict[int, dict[str, float]]] = {name: {} for name in benches}
        cfg = EvalConfig(batch_size=64, device="cpu")
        for ck in result.checkpoints:
            model, tok = load_checkpoint(ck.uri)
            for name, bench in benches.items():
                res = evaluate_benchmark(model, tok, bench.eval_instances, config=cfg)
                table[name][ck.step] = res.metrics()
        t_eval = time.perf_counter()

        steps = [ck.step for ck in result.checkpoints]
        print(f"\nacc ± stderr (acc_norm) on validation; chance = 0.25; eval {t_eval - t_train:.0f}s")
        print(f"{'benchmark':12s} {'n':>4s} " + " ".join(f"{s:>17d}" for s in steps))
        for name, rows in table.items():
            n = int(rows[steps[-1]]["n"])
            cells = " ".join(
                f"{r['acc']:.2f}±{r['acc_stderr']:.2f} ({r['acc_norm']:.2f})"
                for r in (rows[s] for s in steps)
            )
            print(f"{name:12s} {n:4d} {cells}")
        print(f"\nWall time {time.perf_counter() - t0:.0f}s (threads={args.threads})")
        if args.json:
            Path(args.json).write_text(json.dumps({"world": world, "table": table}, indent=1) + "\n")
    finally:
        if not args.out:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
