"""Groups predicted for unscored documents, measured against scoring them (issue 13).

On the demo's real data and proxy (``runs/demo``, built by ``automixer demo`` or
``bench/validate_demo.py --world real``), in one store:

1. **full**: a remix that scores the first ``--full`` documents of every domain file;
2. **sample**: the remix that scores the first ``--sample`` of them (the demo's; the shards are
   the full remix's first ones, so nothing is scored twice), then ``label`` on the whole corpus;
3. **seed**: the full remix again with another Hessian sample (``influence.hessian_seed: 1``).

Prints: the predictor's held-out agreement on the sample; predicted vs scored groups on the full
remix's documents that the sample did not score (accuracy, macro-F1, ARI); the same agreement
between the two Hessian seeds (the scorer's own noise, the issue's yardstick); the sample's
weights and the weights of the full remix's documents regrouped by their predicted labels, each
against the full mixture's 90% interval; and labelling vs scoring throughput (documents/s).

    python bench/labels.py --out runs/demo --full 200 --sample 100
    python bench/labels.py --world planted --out runs/demo-planted --full 200 --sample 50

With ``--world planted`` (``automixer demo --world planted`` first) the run is on the planted world,
where each benchmark is taught by one domain: it also prints how often the scored and the predicted
groups are that planted domain's benchmark.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automixer.demo import demo_planted_world, demo_run_config
from automixer.runtime import embedded_prefect
from automixer_core.aggregation import floor_weights
from automixer_core.config import RunConfig
from automixer_core.labels.agreement import group_agreement
from automixer_core.published import read_published_mixture
from automixer_core.store import Store
from tasks.labels import read_membership

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _config(
    data: Path, out: Path, docs: int, world: dict[str, Any] | None = None, **influence: Any
) -> RunConfig:
    raw = demo_run_config(data, out, world=world)
    raw["corpus"]["max_docs_per_file"] = docs
    raw["influence"].update(influence)
    raw["labeling"] = {"shard_docs": 2000, "shards_per_task": 1}
    return RunConfig.model_validate(raw)


def _labels(store: Store, label_id: str) -> pd.DataFrame:
    keys = [k for k in store.list(f"labels/{label_id}/shards") if k.endswith(".parquet")]
    cols = ["doc_id", "group", "predicted_group", "source"]
    return pd.concat([pd.read_parquet(io.BytesIO(store.read_bytes(k)), columns=cols) for k in keys])


def _regrouped_weights(
    membership: pd.DataFrame, groups: pd.Series, names: list[str], min_weight: float
) -> dict[str, float]:
    """Weights of ``names`` when each document of ``membership`` is in ``groups[doc_id]`` (its
    scores unchanged): ρ_g = Σ I_joint·n / Σ n over the documents of g, then the floor rule."""
    g = membership["doc_id"].map(groups).to_numpy()
    joint = membership["joint_score"].to_numpy(dtype=np.float64)
    n = membership["n_tokens"].to_numpy(dtype=np.float64)
    rho = np.array([(joint[g == k] * n[g == k]).sum() / max(n[g == k].sum(), 1e-12) for k in names])
    tokens = np.array([n[g == k].sum() for k in names])
    weights, _, _ = floor_weights(rho, tokens, min_weight)
    return dict(zip(names, weights.tolist(), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    ap.add_argument("--full", type=int, default=200, help="documents scored per domain file (the reference)")
    ap.add_argument("--sample", type=int, default=100, help="documents scored per domain file (the sample)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--world", choices=["real", "planted"], default="real")
    args = ap.parse_args()
    world = None
    if args.world == "planted":
        args.data, world = demo_planted_world(args.out)
    if not (args.out / "proxy" / "proxy_run.json").exists():
        raise SystemExit(
            f"No demo proxy under {args.out}: run `automixer demo` (or bench/validate_demo.py) first"
        )
    full_cfg = _config(args.data, args.out, args.full, world)
    sample_cfg = _config(args.data, args.out, args.sample, world)
    seed_cfg = _config(args.data, args.out, args.full, world, hessian_seed=1)
    seconds: dict[str, float] = {}
    with embedded_prefect():
        from flows.label import label_flow
        from flows.remix import remix_flow

        t = time.perf_counter()
        sample = remix_flow(sample_cfg)
        seconds["remix sample"] = time.perf_counter() - t
        t = time.perf_counter()
        full = remix_flow(full_cfg)
        seconds["remix full"] = time.perf_counter() - t
        scored_full = full["counts"]["shards_scored"]
        t = time.perf_counter()
        seed = remix_flow(seed_cfg)
        seconds["remix seed 1"] = time.perf_counter() - t
        t = time.perf_counter()
        labelled = label_flow(sample_cfg, sample["uri"])
        seconds["label"] = time.perf_counter() - t

    store = Store(full_cfg.store)
    m_full, m_seed, m_sample = (read_membership(x["uri"]) for x in (full, seed, sample))
    labels = _labels(store, labelled["id"]).set_index("doc_id")
    unscored = m_full[~m_full["doc_id"].isin(set(m_sample["doc_id"]))]
    pred = group_agreement(
        unscored["group"].tolist(), labels.loc[unscored["doc_id"], "predicted_group"].tolist()
    )
    seeds_all = group_agreement(
        m_full["group"].tolist(), m_seed.set_index("doc_id").loc[m_full["doc_id"], "group"].tolist()
    )
    seeds_unscored = group_agreement(
        unscored["group"].tolist(), m_seed.set_index("doc_id").loc[unscored["doc_id"], "group"].tolist()
    )
    report = labelled["predictor"]["report"]

    mix_full = read_published_mixture(full["uri"])
    mix_sample = read_published_mixture(sample["uri"])
    names = [g.name for g in mix_full.groups]
    min_weight = full_cfg.aggregation.min_weight
    regrouped = _regrouped_weights(
        m_full, labels["group"].reindex(m_full["doc_id"]).set_axis(m_full["doc_id"]), names, min_weight
    )
    sample_w = {g.name: g.weight for g in mix_sample.groups}
    rows = []
    for g in mix_full.groups:
        lo, hi = g.weight_ci or (float("nan"), float("nan"))
        rows.append(
            {
                "group": g.name,
                "full": g.weight,
                "lo": lo,
                "hi": hi,
                "sample": sample_w.get(g.name, 0.0),
                "predicted": regrouped[g.name],
            }
        )

    print(
        f"\nPredictor (trained on the sample's {len(m_sample)} scored documents): held-out accuracy "
        f"{report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f} ({report['n_holdout']} held out)"
    )
    print(
        "\n| agreement on the full remix's documents the sample did not score | n | accuracy | macro-F1 | ARI |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| predicted vs scored (seed 0) | {pred['n']} | {pred['accuracy']:.3f} | {pred['macro_f1']:.3f} | {pred['ari']:.3f} |"
    )
    print(
        f"| scored seed 1 vs seed 0 | {seeds_unscored['n']} | {seeds_unscored['accuracy']:.3f} | "
        f"{seeds_unscored['macro_f1']:.3f} | {seeds_unscored['ari']:.3f} |"
    )
    print(
        f"| (all {seeds_all['n']} documents) seed 1 vs seed 0 | {seeds_all['n']} | {seeds_all['accuracy']:.3f} | "
        f"{seeds_all['macro_f1']:.3f} | {seeds_all['ari']:.3f} |"
    )
    ratio = pred["accuracy"] / seeds_unscored["accuracy"] if seeds_unscored["accuracy"] else float("nan")
    f1_ratio = pred["macro_f1"] / seeds_unscored["macro_f1"] if seeds_unscored["macro_f1"] else float("nan")
    print(f"\npredicted / seed agreement: accuracy {ratio:.2f}, macro-F1 {f1_ratio:.2f} (goal ≥ 0.8)")
    print("\n| group | full (90% interval) | sample | inside? | regrouped by predicted labels | inside? |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ins = "yes" if r["lo"] <= r["sample"] <= r["hi"] else "**no**"
        inp = "yes" if r["lo"] <= r["predicted"] <= r["hi"] else "**no**"
        print(
            f"| {r['group']} | {r['full']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] | {r['sample']:.3f} | {ins} | "
            f"{r['predicted']:.3f} | {inp} |"
        )
    truth = None
    if world is not None:  # each skill domain's documents belong with the benchmark it teaches
        teaches = {b["domain"]: name for name, b in world["benchmarks"].items()}
        dom = unscored["domain"]
        skill = dom.isin(list(teaches))
        want = dom[skill].map(teaches)
        got_scored = unscored.loc[skill, "group"]
        got_pred = labels.loc[unscored.loc[skill, "doc_id"], "predicted_group"].to_numpy()
        truth = {
            "n": int(skill.sum()),
            "scored": float((got_scored.to_numpy() == want.to_numpy()).mean()),
            "predicted": float((got_pred == want.to_numpy()).mean()),
        }
        print(
            f"\nplanted truth, on the {truth['n']} unscored skill-domain documents: group = the benchmark its "
            f"domain teaches for {truth['scored']:.3f} of them when scored, {truth['predicted']:.3f} when predicted"
        )
    label_rate = labelled["counts"]["documents_labelled"] / seconds["label"]
    scored_docs = len(m_full) - len(m_sample)
    score_rate = scored_docs / seconds["remix full"] if scored_full else float("nan")
    print(
        f"\nthroughput: labelling {label_rate:,.0f} documents/s (the whole label flow, "
        f"{labelled['counts']['documents_labelled']:,} documents); scoring {score_rate:,.1f} documents/s "
        f"(the full remix's {scored_docs} new documents, evaluations cached); ratio {label_rate / score_rate:,.0f}×"
    )
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "predictor": report,
                    "predicted_vs_scored": pred,
                    "seeds_unscored": seeds_unscored,
                    "seeds_all": seeds_all,
                    "weights": rows,
                    "label_rate": label_rate,
                    "score_rate": score_rate,
                    "seconds": seconds,
                    "planted_truth": truth,
                },
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
