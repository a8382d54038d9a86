"""Settle the method's open choices on a planted world, where the right groups are known.

Runs the demo's proxy on a planted-skill world (``automixer demo --world planted`` builds it;
this script builds it too when absent), then remixes with one choice changed at a time, and
prints for each variant how well the groups recover the planted domains (ARI and AMI over the
documents of relevant domains, the fraction in their own benchmark's group), where the weight
goes (relevant, distractor, wrong-facts domains) and which checkpoints were chosen. Evaluations,
query vectors and shard scores are cached in the store, so variants that only change the
aggregation cost seconds.

    python bench/planted_choices.py [--out runs/demo-planted] [--wrong-facts 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from automixer.demo import demo_run_config, planted_recovery, planted_world
from automixer.runtime import embedded_prefect
from automixer_core.config import RunConfig
from automixer_core.proxy import train_proxy
from automixer_core.proxy.config import demo_proxy_config

#: One choice changed at a time from the defaults (section → fields), then a few combinations.
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "defaults": {},
    "query_loss=mean": {"influence": {"query_loss": "mean"}},
    "normalize=zscore": {"aggregation": {"normalize": "zscore"}},
    "normalize=rank": {"aggregation": {"normalize": "rank"}},
    "selection=gold_ll": {"selection": {"metric": "gold_ll"}},
    "alpha=uniform": {"aggregation": {"alpha": "uniform"}},
    "residual=all_negative": {"aggregation": {"residual_rule": "all_negative"}},
    # the residual rules (issue 14): document rules alone, the domain rule by its point estimate
    # (default) or only where its whole interval is below 0
    "all_negative (no domain rule)": {
        "aggregation": {"residual_rule": "all_negative", "residual_domains": "off"}
    },
    "negative_joint (no domain rule)": {"aggregation": {"residual_domains": "off"}},
    "negative_joint + confident domains": {"aggregation": {"residual_domains": "confident"}},
    "estimator=grad_dot": {"influence": {"estimator": "grad_dot"}},
    "mean+zscore": {"influence": {"query_loss": "mean"}, "aggregation": {"normalize": "zscore"}},
    "mean+rank": {"influence": {"query_loss": "mean"}, "aggregation": {"normalize": "rank"}},
    "gold_ll+zscore": {"selection": {"metric": "gold_ll"}, "aggregation": {"normalize": "zscore"}},
    "selection=all": {"selection": {"strategy": "all"}},
    "selection=emergence": {"selection": {"strategy": "emergence"}},
    "emergence+zscore": {"selection": {"strategy": "emergence"}, "aggregation": {"normalize": "zscore"}},
    "emergence+rank": {"selection": {"strategy": "emergence"}, "aggregation": {"normalize": "rank"}},
    "emergence+rank+all_negative": {
        "selection": {"strategy": "emergence"},
        "aggregation": {"normalize": "rank", "residual_rule": "all_negative"},
    },
    "all+zscore": {"selection": {"strategy": "all"}, "aggregation": {"normalize": "zscore"}},
    "all+rank": {"selection": {"strategy": "all"}, "aggregation": {"normalize": "rank"}},
    "all+all_negative": {"selection": {"strategy": "all"}, "aggregation": {"residual_rule": "all_negative"}},
    "all+alpha=uniform": {"selection": {"strategy": "all"}, "aggregation": {"alpha": "uniform"}},
    "gold_ll+mean+zscore": {
        "selection": {"metric": "gold_ll"},
        "influence": {"query_loss": "mean"},
        "aggregation": {"normalize": "zscore"},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/demo-planted"))
    ap.add_argument(
        "--wrong-facts", type=int, default=None, help="add a domain of wrong facts for benchmark k"
    )
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args()
    from automixer_core.worlds import PlantedWorldConfig, write_planted_world

    data = args.out / "world"
    if args.wrong_facts is not None and not (data / "world.json").exists():
        write_planted_world(data, PlantedWorldConfig(wrong_facts=args.wrong_facts))
    world = planted_world(data)
    proxy = args.out / "proxy"
    t0 = time.perf_counter()
    if not (proxy / "proxy_run.json").exists():
        train_proxy(demo_proxy_config(), str(data / "corpus"), str(proxy), progress=False, overwrite=True)
        print(f"proxy trained in {time.perf_counter() - t0:.0f}s")
    harmful = [world["wrong_facts"]["domain"]] if world.get("wrong_facts") else []
    base = demo_run_config(data, args.out, world=world)
    rows = []
    with embedded_prefect():
        from flows.remix import remix_flow

        for name in args.variants.split(","):
            raw = json.loads(json.dumps(base))
            for section, fields in VARIANTS[name].items():
                raw.setdefault(section, {}).update(fields)
            t = time.perf_counter()
            out = remix_flow(RunConfig.model_validate(raw))
            mixture, rec = planted_recovery(raw["store"], out["id"], world)
            steps = sorted({a.step for a in mixture.provenance.artifacts})
            row = {
                "variant": name,
                "ARI": rec["ari"],
                "AMI": rec["ami"],
                "own group": rec["correct"],
                "w relevant": rec["weight_relevant"],
                "w distractor": rec["weight_distractor"],
                "w wrong": rec["weight_harmful"],
                "artifact steps": "/".join(map(str, steps)),
                "seconds": time.perf_counter() - t,
            }
            relevant = [b["domain"] for b in world["benchmarks"].values()]
            row["relevant docs in residual"] = sum(
                rec["confusion"].get(d, {}).get("residual", 0) for d in relevant
            )
            if harmful:
                wrong = rec["confusion"].get(harmful[0], {})
                row["wrong docs in weighted groups"] = sum(
                    n for g, n in wrong.items() if g != "residual" and mixture.weights.get(g, 0) > 0
                )
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.json:
        args.json.write_text(table.to_json(orient="records", indent=2))


if __name__ == "__main__":
    main()
