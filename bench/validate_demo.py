"""Does the mixture train a better model? The demo's proxy and remix, then `validate`, on the real
data (../shared/data, the paper's eight benchmarks) or on a planted world; prints the tables and
how long each part took.

    python bench/validate_demo.py --world planted --seeds 3
    python bench/validate_demo.py --world real --seeds 3 --candidates mixture,uniform,natural,temperature

Every part is cached in the store (runs/demo or runs/demo-planted by default): a second run
trains nothing it already has. Everything runs at the demo's size (393K parameters, 983K tokens per
target) on one thread per run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from automixer.demo import demo_run_config, planted_world
from automixer.runtime import embedded_prefect
from automixer_core.config import RunConfig
from automixer_core.proxy import train_proxy
from automixer_core.proxy.config import demo_proxy_config

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", choices=["real", "planted"], default="planted")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real data (world real)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--candidates", default="mixture,uniform,natural")
    ap.add_argument("--baselines", default="uniform,natural")
    ap.add_argument(
        "--set", action="append", default=[], help='section.field=json, e.g. selection.strategy="emergence"'
    )
    ap.add_argument("--json", type=Path, default=None, help="write the validation's headline here")
    args = ap.parse_args()
    out = args.out or Path("runs/demo" if args.world == "real" else "runs/demo-planted")
    world = None
    data = args.data
    if args.world == "planted":
        data = out / "world"
        world = planted_world(data)
    times: dict[str, float] = {}
    t = time.perf_counter()
    if not (out / "proxy" / "proxy_run.json").exists():
        train_proxy(
            demo_proxy_config(), str(data / "corpus"), str(out / "proxy"), progress=False, overwrite=True
        )
    times["proxy"] = time.perf_counter() - t
    raw: dict[str, Any] = demo_run_config(data, out, world=world)
    raw["validation"] = {
        "candidates": args.candidates.split(","),
        "baselines": args.baselines.split(","),
        "seeds": args.seeds,
    }
    for item in args.set:
        path, _, value = item.partition("=")
        section, _, field = path.partition(".")
        raw.setdefault(section, {})[field] = json.loads(value)
    config = RunConfig.model_validate(raw)
    with embedded_prefect():
        from flows.remix import remix_flow
        from flows.validate import validate_flow

        t = time.perf_counter()
        remix = remix_flow(config)
        times["remix"] = time.perf_counter() - t
        t = time.perf_counter()
        result = validate_flow(config, remix["uri"])
        times["validate"] = time.perf_counter() - t
    print(
        f"\nmixture {remix['id']}; validation {result['id']} ({result['counts']['targets_trained']} targets trained)"
    )
    print("final mean acc_norm over benchmarks (± seed std):")
    for name, v in result["final"].items():
        print(f"  {name:<12} {v['value']:.4f} ± {v['seed_std']:.4f}")
    print("paired differences (final checkpoint, mean over benchmarks), and tokens to reach the baseline:")
    for d in result["headline"]:
        frac = result["tokens_to_reach"].get(d["candidate"], {}).get(d["baseline"])
        print(
            f"  {d['candidate']} − {d['baseline']}: {d['delta']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]  "
            f"tokens to reach: {'never' if frac is None else f'{frac:.2f}'}"
        )
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    print(f"report: {result['report']}")
    if args.json:
        args.json.write_text(json.dumps({**result, "seconds": times}, indent=2, default=str))


if __name__ == "__main__":
    main()
