"""Which residual rule trains the better model when a trainer samples by the mixture's GROUPS?
(issue 14, on the planted world with a wrong-facts domain.)

A trainer that samples by groups (the task-aligned groups with their weights; the documents of
group ``residual`` get weight 0) feeds it whatever documents each group holds. Three residual
rules decide which documents go to ``residual``:

    A  all_negative (no domain rule)    aggregation {residual_rule: all_negative, residual_domains: off}
    B  negative_joint (no domain rule)  aggregation {residual_domains: off}
    C  defaults                         negative_joint + residual_domains: confident (level 0.75)

For each rule: remix (cached in the store) → the published mixture's group weights and membership
(doc_id → group) → a regrouped corpus of the SCORED documents only (one jsonl file per group,
the document's full text, its group as the ``domain`` field), so every rule trains on the same
documents and only the grouping and weights differ. Then target proxies with the validate flow's
target config (``ValidationConfig().target``: the demo proxy, 983K tokens) on the rule's group
weights, seeds 0..seeds-1, one BPE tokenizer shared by every rule and seed (trained on the
original corpus as the validate flow's ``prepare_task`` does), only the final checkpoint saved,
one thread per training, two trainings at a time. Each final checkpoint is evaluated on the
world's planted benchmarks (the run config's benchmarks, per question), and the script prints the
mean accuracy per rule and benchmark (± seed std) and the paired differences C−A, C−B, B−A (mean
over benchmarks, and the benchmark the wrong facts attack) with 90% intervals paired over
questions and seeds (``automixer_core.validation.stats.paired_differences``).

    python bench/residual_rules.py [--out runs/demo-wrong] [--seeds 3] [--workdir runs/demo-wrong/residual-rules]

Needs the proxy and store of ``bench/planted_choices.py --out runs/demo-wrong --wrong-facts 1``
(the remixes are then cached). Finished target runs are kept in the workdir
(``<rule>/seed-<s>/questions.parquet``) and not trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: The rules (short name → label, config overrides), compared pairwise as (a, b): a − b.
RULES: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "A": (
        "all_negative (no domain rule)",
        {"aggregation": {"residual_rule": "all_negative", "residual_domains": "off"}},
    ),
    "B": ("negative_joint (no domain rule)", {"aggregation": {"residual_domains": "off"}}),
    "C": ("defaults", {}),
}
PAIRS = [("C", "A"), ("C", "B"), ("B", "A")]
RESIDUAL = "residual"


def remix_rules(out: Path, world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per rule: the mixture id, its group weights and its membership table (doc_id → group)."""
    from automixer.demo import demo_run_config
    from automixer.runtime import embedded_prefect
    from automixer_core.config import RunConfig
    from automixer_core.mixture import membership_from_parquet
    from automixer_core.published import read_published_mixture
    from automixer_core.store import Store

    base = demo_run_config(out / "world", out, world=world)
    store = Store(base["store"])
    rules = {}
    with embedded_prefect():
        from flows.remix import remix_flow

        for short, (label, overrides) in RULES.items():
            raw = json.loads(json.dumps(base))
            for section, fields in overrides.items():
                raw.setdefault(section, {}).update(fields)
            mid = remix_flow(RunConfig.model_validate(raw))["id"]
            mixture = read_published_mixture(store.uri(f"mixtures/{mid}"))
            membership = membership_from_parquet(store.read_bytes(f"mixtures/{mid}/membership.parquet"))
            rules[short] = {
                "label": label,
                "id": mid,
                "weights": mixture.weights,
                "membership": membership,
            }
    return rules


def write_grouped_corpus(
    folder: Path, membership: pd.DataFrame, texts: dict[str, str], group_field: str
) -> dict[str, int]:
    """One ``<group>/docs.jsonl`` per group of the scored documents (their order in the original
    corpus), the group in ``group_field``. Returns documents per group."""
    counts: dict[str, int] = {}
    group_of = dict(zip(membership["doc_id"].astype(str), membership["group"].astype(str), strict=True))
    rows: dict[str, list[str]] = {}
    for doc_id, text in texts.items():  # original corpus order
        if doc_id in group_of:
            g = group_of[doc_id]
            rows.setdefault(g, []).append(json.dumps({"id": doc_id, "text": text, group_field: g}))
    for g, lines in rows.items():
        (folder / g).mkdir(parents=True, exist_ok=True)
        (folder / g / "docs.jsonl").write_text("\n".join(lines) + "\n")
        counts[g] = len(lines)
    return counts


def train_and_evaluate(job: dict[str, Any]) -> dict[str, Any]:
    """One target run (in a worker process, one thread): train on the regrouped corpus, evaluate the
    final checkpoint on every benchmark, write ``questions.parquet`` (benchmark, doc_id, metrics)."""
    import torch

    from automixer_core.checkpoints import load_checkpoint
    from automixer_core.evaluation import evaluate_benchmark
    from automixer_core.proxy import train_proxy
    from automixer_core.validation.metrics import question_metrics
    from tasks.evaluate import cached_benchmark

    torch.set_num_threads(1)
    run_dir = Path(job["run_dir"])
    t0 = time.perf_counter()
    result = train_proxy(job["target"], job["corpus"], str(run_dir / "run"), progress=False, overwrite=True)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    final = result.checkpoints[-1]
    model, tokenizer = load_checkpoint(final.uri, device="cpu")
    tables = []
    for spec in job["specs"]:
        bench = cached_benchmark(spec)
        res = evaluate_benchmark(model, tokenizer, bench.eval_instances, config=job["evaluation"])
        table = question_metrics(res.per_example).reset_index()
        table.insert(0, "benchmark", bench.name)
        tables.append(table)
    questions = pd.concat(tables, ignore_index=True)
    questions.to_parquet(run_dir / "questions.parquet")
    info = {
        "rule": job["rule"],
        "seed": job["seed"],
        "step": final.step,
        "loss": final.loss,
        "group_tokens": result.group_tokens,
        "train_seconds": train_s,
        "eval_seconds": time.perf_counter() - t1,
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2, default=str))
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/demo-wrong"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None, help="default: <out>/residual-rules")
    ap.add_argument("--workers", type=int, default=2, help="trainings at a time (one thread each)")
    ap.add_argument("--metric", default="acc", help="acc | acc_norm | gold_ll | margin")
    ap.add_argument("--json", type=Path, default=None, help="write the tables here")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the worker processes
    os.environ["MKL_NUM_THREADS"] = "1"
    from automixer.demo import demo_run_config, planted_world
    from automixer_core.config import RunConfig
    from automixer_core.corpus import iter_documents
    from automixer_core.proxy.train import proxy_texts, proxy_tokenizer
    from automixer_core.validation.config import ValidationConfig
    from automixer_core.validation.stats import MEAN, paired_differences

    work = args.workdir or args.out / "residual-rules"
    work.mkdir(parents=True, exist_ok=True)
    world = planted_world(args.out / "world")
    attacked = world["wrong_facts"]["benchmark"] if world.get("wrong_facts") else None
    wrong_domain = world["wrong_facts"]["domain"] if world.get("wrong_facts") else None
    times: dict[str, float] = {}

    # 1. remix per rule (cached)
    t = time.perf_counter()
    rules = remix_rules(args.out, world)
    times["remix (3 rules, cached)"] = time.perf_counter() - t

    # 2. the regrouped corpora: the scored documents only, the same for every rule
    t = time.perf_counter()
    val = ValidationConfig()
    config = RunConfig.model_validate(demo_run_config(args.out / "world", args.out, world=world))
    assert config.corpus is not None
    docs = {
        d.id: (d.group, d.text)
        for d in iter_documents(
            config.corpus.uri,
            text_field=val.target.text_field,
            id_field=val.target.id_field,
            group_field=val.target.group_field,
        )
    }
    scored = [set(r["membership"]["doc_id"].astype(str)) for r in rules.values()]
    if any(s != scored[0] for s in scored):
        raise SystemExit("the rules' memberships hold different documents; cannot compare them")
    missing = sorted(scored[0] - set(docs))
    if missing:
        raise SystemExit(f"{len(missing)} scored doc_ids are not in the corpus, e.g. {missing[:3]}")
    texts = {i: text for i, (_, text) in docs.items()}
    max_group = 0
    for short, r in rules.items():
        folder = work / short / "corpus"
        r["docs"] = write_grouped_corpus(folder, r["membership"], texts, val.target.group_field)
        r["corpus"] = str(folder)
        max_group = max(max_group, *r["docs"].values())
        m = r["membership"]
        wrong = m[m["domain"] == wrong_domain] if wrong_domain else m.iloc[:0]
        r["wrong_weighted"] = int(
            sum(1 for g in wrong["group"] if g != RESIDUAL and r["weights"].get(g, 0) > 0)
        )
    cap = val.target.max_docs_per_group
    if cap is not None and max_group > cap:
        raise SystemExit(f"a group holds {max_group} documents > max_docs_per_group {cap}: it would be cut")

    # one tokenizer for every rule and seed, as the validate flow trains it (original corpus)
    tok_dir = work / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        tok = proxy_tokenizer(val.target, proxy_texts(val.target, config.corpus.uri))
        tok.save_pretrained(str(tok_dir))
    times["corpora + tokenizer"] = time.perf_counter() - t

    print(f"{len(scored[0])} scored documents of {len(docs)}; groups per rule (documents, weight):")
    for short, r in rules.items():
        groups = ", ".join(f"{g} {r['docs'].get(g, 0)} ({w:.3f})" for g, w in r["weights"].items())
        print(
            f"  {short} {r['label']:<32} mixture {r['id']}: {groups}; "
            f"{wrong_domain} docs in weighted groups: {r['wrong_weighted']}"
        )

    # 3. + 4. train and evaluate the targets
    target = val.target.model_copy(
        update={
            "tokenizer": str(tok_dir.resolve()),
            "save_every": val.target.steps,  # the final checkpoint only
            "save_optimizer": False,
            "num_threads": 1,
        }
    )
    specs = [
        s.model_copy(update={"eval_limit": val.eval_limit or s.eval_limit}) for s in config.benchmarks.specs()
    ]
    jobs = []
    for short, r in rules.items():
        for seed in range(args.seeds):
            run_dir = work / short / f"seed-{seed}"
            if (run_dir / "questions.parquet").exists():
                continue
            run_dir.mkdir(parents=True, exist_ok=True)
            weights = {g: (0.0 if g == RESIDUAL else w) for g, w in r["weights"].items() if g in r["docs"]}
            jobs.append(
                {
                    "rule": short,
                    "seed": seed,
                    "run_dir": str(run_dir),
                    "corpus": r["corpus"],
                    "target": target.model_copy(update={"group_weights": weights, "seed": seed}),
                    "specs": specs,
                    "evaluation": config.evaluation.model_copy(update={"device": "cpu"}),
                }
            )
    t = time.perf_counter()
    print(f"\ntraining {len(jobs)} targets, {args.workers} at a time ...", flush=True)
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        for info in pool.map(train_and_evaluate, jobs):
            print(
                f"  {info['rule']} seed {info['seed']}: loss {info['loss']:.3f}, "
                f"train {info['train_seconds']:.0f}s, eval {info['eval_seconds']:.0f}s "
                f"({time.perf_counter() - t:.0f}s elapsed)",
                flush=True,
            )
    times[f"train + evaluate ({len(jobs)} targets)"] = time.perf_counter() - t

    # 5. tables
    t = time.perf_counter()
    per_run = []
    for short in rules:
        for seed in range(args.seeds):
            q = pd.read_parquet(work / short / f"seed-{seed}" / "questions.parquet")
            info = json.loads((work / short / f"seed-{seed}" / "run.json").read_text())
            per_run.append((short, seed, q, info))
    benches = sorted(per_run[0][2]["benchmark"].unique())
    matrices: dict[str, dict[str, np.ndarray]] = {}
    # the same question order for every rule
    ref = {b: per_run[0][2][per_run[0][2]["benchmark"] == b]["doc_id"].to_numpy() for b in benches}
    for short in rules:
        mats = {}
        for b in benches:
            rows = []
            for _, _, q, _ in (x for x in per_run if x[0] == short):
                col = q[q["benchmark"] == b].set_index("doc_id")[args.metric]
                rows.append(col.reindex(ref[b]).to_numpy())
            mats[b] = np.vstack(rows)
        matrices[short] = mats

    table = []
    for short, r in rules.items():
        row: dict[str, Any] = {"rule": f"{short} {r['label']}", "wrong in weighted": r["wrong_weighted"]}
        per_seed_means = []
        for b in benches:
            m = matrices[short][b].mean(axis=1)  # per seed
            row[b] = f"{m.mean():.4f} ± {m.std(ddof=1) if len(m) > 1 else 0.0:.4f}"
            per_seed_means.append(m)
        mean = np.mean(per_seed_means, axis=0)
        row["mean"] = f"{mean.mean():.4f} ± {mean.std(ddof=1) if len(mean) > 1 else 0.0:.4f}"
        losses = [info["loss"] for s_, _, _, info in per_run if s_ == short]
        row["final loss"] = f"{np.mean(losses):.3f}"
        table.append(row)
    print(
        f"\nfinal-checkpoint {args.metric} per rule × benchmark (mean over {args.seeds} seeds ± seed std; "
        f"questions: {', '.join(f'{b} {len(ref[b])}' for b in benches)}):"
    )
    print(pd.DataFrame(table).to_string(index=False))

    diffs = []
    print(f"\npaired differences of {args.metric} (90% interval over questions × seeds):")
    for a, b in PAIRS:
        d = paired_differences(matrices[a], matrices[b], n_boot=val.bootstrap, ci=val.ci, seed=val.seed)
        for bench in [MEAN, *([attacked] if attacked else []), *[x for x in benches if x != attacked]]:
            p = d[bench]
            diffs.append(
                {
                    "pair": f"{a}−{b}",
                    "benchmark": bench,
                    "delta": p.delta,
                    "lo": p.lo,
                    "hi": p.hi,
                    "excludes 0": p.excludes_zero,
                }
            )
    dt = pd.DataFrame(diffs)
    print(dt.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    times["tables"] = time.perf_counter() - t
    print("\nseconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "mixtures": {s: {"label": r["label"], "id": r["id"]} for s, r in rules.items()},
                    "table": table,
                    "differences": diffs,
                    "seconds": times,
                },
                indent=2,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
