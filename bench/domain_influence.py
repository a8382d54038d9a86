"""Which corpus domains score highest for which benchmark, at one real checkpoint.

Scores a seeded sample of every domain of the real corpus against the query vectors of the eight
paper benchmarks (DataInf by default, the paper's estimator) and prints, per benchmark, the mean
influence of each domain and the domains ranked. No tuning: it reports what comes out.

    python bench/domain_influence.py --checkpoint runs/demo/proxy/checkpoint-480 --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import pandas as pd
import torch

from automixer_core.benchmarks import PAPER_BENCHMARKS, BenchmarkSpec, load_benchmark
from automixer_core.checkpoints import load_checkpoint
from automixer_core.corpus import iter_documents
from automixer_core.evaluation import gold_pairs
from automixer_core.influence import InfluenceConfig, build_query_vectors, score_documents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a checkpoint folder (e.g. from `automixer demo`)")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--docs-per-domain", type=int, default=60)
    ap.add_argument("--queries", type=int, default=64, help="query examples per benchmark")
    ap.add_argument("--estimator", default="datainf", choices=["datainf", "grad_dot", "cosine"])
    ap.add_argument("--layers", default="embed_head")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the table as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()

    model, tok = load_checkpoint(args.checkpoint)
    data = Path(args.data)
    by_domain: dict[str, list[tuple[str, str]]] = {}
    for doc in iter_documents(str(data / "corpus")):
        by_domain.setdefault(doc.group, []).append((doc.id, doc.text))
    rng = random.Random(0)
    sample = [
        (d, i, t)
        for d, docs in sorted(by_domain.items())
        for i, t in rng.sample(docs, min(args.docs_per_domain, len(docs)))
    ]
    domain_of = {i: d for d, i, _ in sample}
    tokenized = [(i, tok(t)["input_ids"]) for _, i, t in sample]

    cfg = InfluenceConfig(
        estimator=args.estimator, layers=args.layers, hessian_samples=len(tokenized), max_length=256
    )
    queries = {}
    for name in PAPER_BENCHMARKS:
        bench = load_benchmark(
            BenchmarkSpec(name=name, data_dir=data, query_limit=args.queries, eval_limit=1)
        )
        queries[name] = gold_pairs(tok, bench.query_instances)
    hessian = [ids for _, ids in rng.sample(tokenized, min(128, len(tokenized)))]
    vectors = build_query_vectors(model, queries, cfg, hessian_docs=hessian)
    result = score_documents(model, tokenized, vectors, cfg)

    frame = pd.DataFrame(result.scores, columns=result.query_names)
    frame["domain"] = [domain_of[i] for i in result.doc_ids]
    # Token-weighted mean influence per domain (the density of DESIGN §1.6, per benchmark).
    n = pd.Series(result.n_tokens, dtype=float)
    weighted = frame[result.query_names].mul(n, axis=0)
    weighted["domain"] = frame["domain"]
    density = weighted.groupby("domain").sum().div(n.groupby(frame["domain"]).sum(), axis=0)
    print(
        f"checkpoint {args.checkpoint}, estimator {args.estimator}, layers {args.layers}, "
        f"{len(sample)} documents ({args.docs_per_domain} per domain), {args.queries} queries per benchmark, "
        f"{time.perf_counter() - t0:.0f}s\n"
    )
    print("Token-weighted mean influence ρ per domain (rows) and benchmark (columns):")
    print(density.to_string(float_format=lambda v: f"{v:+.2e}"))
    print("\nDomains ranked per benchmark (highest influence first):")
    ranking = {b: density[b].sort_values(ascending=False).index.tolist() for b in result.query_names}
    for b, order in ranking.items():
        print(f"  {b:<14} {' > '.join(order[:4])}  ...  lowest: {order[-1]}")
    if args.out:
        Path(args.out).write_text(json.dumps({"density": density.to_dict(), "ranking": ranking}, indent=2))


if __name__ == "__main__":
    main()
