"""How the group predictor's agreement grows with the number of scored documents (issue 13).

The sample a remix scores is what the predictor learns from. On one published mixture (default:
the store's latest), a fixed stratified held-out split (``--test-frac``) is set aside; the shipped
predictor (``train_group_predictor`` with the demo config's ``labeling.predictor``) is trained on
stratified subsets of the rest of growing size n, ``--repeats`` times each with another subset,
and its groups on the held-out documents are compared with the scored ones.

Prints, per n: accuracy (mean and range over repeats), macro-F1 and the ratio to the yardstick (two
Hessian seeds of the scorer agree on this fraction of documents; ``--seed-mixture`` or the figure
recorded in docs/RESULTS.md). Then a least-squares line of accuracy against log2(n) and the n at
which it would reach 0.8 of the yardstick, *if the line held* (an extrapolation, marked so), and
the majority-group baseline.

    python bench/label_curve.py --out runs/demo --mixture 0b19106216868e82
    python bench/label_curve.py --world planted --out runs/demo-planted --mixture a164dbadcbe6a0f0

``--features hidden_state`` (or ``both``) uses the predictor's other features: the mean last-layer
hidden state of the proxy's last checkpoint (OUT/proxy), computed once for every document.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from label_targets import DEFAULT_DATA, load_scored, seed_yardstick
from sklearn.model_selection import train_test_split

from automixer_core.checkpoints import discover_checkpoints, load_checkpoint
from automixer_core.labels.agreement import group_agreement
from automixer_core.labels.embedding import mean_hidden_states
from automixer_core.labels.predictor import majority_accuracy, train_group_predictor

GOAL = 0.8  # issue 13: predicted-vs-scored agreement ≥ 0.8 of the seed-to-seed agreement


def _sizes(pool: int, start: int) -> list[int]:
    """start, 2·start, 4·start, … below ``pool``, then ``pool`` itself."""
    out = []
    n = start
    while n < pool:
        out.append(n)
        n *= 2
    return [*out, pool]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    ap.add_argument("--world", choices=["real", "planted"], default="real")
    ap.add_argument("--mixture", default=None, help="mixture id in OUT/store (default: the latest)")
    ap.add_argument("--seed-mixture", default=None, help="the same documents scored with Hessian seed 1")
    ap.add_argument("--test-frac", type=float, default=0.2)
    ap.add_argument("--start", type=int, default=100, help="smallest training sample")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", choices=["ngrams", "hidden_state", "both"], default="ngrams")
    args = ap.parse_args()
    start = time.perf_counter()

    sc = load_scored(args.data, args.out, args.world, args.mixture)
    cfg, mixture_id, truth = sc.config, sc.mixture_id, sc.groups
    texts = np.asarray(sc.texts, dtype=object)

    predictor_cfg = cfg.labeling.predictor.model_copy(update={"features": args.features})
    embed = None
    if args.features != "ngrams":
        last = discover_checkpoints(str(args.out / "proxy")).checkpoints[-1]
        model, tokenizer = load_checkpoint(last, device="cpu")
        hidden = mean_hidden_states(
            model, tokenizer, texts.tolist(), max_tokens=predictor_cfg.hidden_max_tokens
        )
        row = {t: i for i, t in enumerate(texts.tolist())}

        def embed(batch: list[str]) -> np.ndarray:
            return hidden[[row[t] for t in batch]]

    seed_acc, seed_note, _ = seed_yardstick(args.out, args.seed_mixture, sc, args.world)

    idx = np.arange(len(truth))
    pool, test = train_test_split(idx, test_size=args.test_frac, stratify=truth, random_state=args.seed)
    base = majority_accuracy(truth[pool], truth[test])

    print(
        f"mixture {mixture_id}: {len(truth)} scored documents, {len(set(truth))} groups; features "
        f"{args.features}; held out "
        f"{len(test)} (stratified, seed {args.seed}); yardstick {seed_acc:.3f} ({seed_note})\n"
    )
    print("| scored documents n | accuracy (mean [min, max]) | macro-F1 | acc / seed | fit s |")
    print("|---|---|---|---|---|")
    means: list[tuple[int, float]] = []
    for n in _sizes(len(pool), args.start):
        accs, f1s, secs = [], [], []
        for r in range(args.repeats if n < len(pool) else 1):
            train = (
                pool
                if n == len(pool)
                else train_test_split(
                    pool, train_size=n, stratify=truth[pool], random_state=args.seed + 1 + r
                )[0]
            )
            t = time.perf_counter()
            predictor, _ = train_group_predictor(
                texts[train].tolist(), truth[train].tolist(), None, predictor_cfg, embed=embed
            )
            got = predictor.predict(texts[test].tolist(), embed).groups
            secs.append(time.perf_counter() - t)
            agree = group_agreement(truth[test].tolist(), list(got))
            accs.append(float(agree["accuracy"]))
            f1s.append(float(agree["macro_f1"]))
        acc = float(np.mean(accs))
        means.append((n, acc))
        print(
            f"| {n} | {acc:.3f} [{min(accs):.3f}, {max(accs):.3f}] | {np.mean(f1s):.3f} | "
            f"{acc / seed_acc:.2f} | {np.mean(secs):.1f} |"
        )

    ns = np.log2([n for n, _ in means])
    ys = np.array([a for _, a in means])
    slope, icept = np.polyfit(ns, ys, 1)
    target = GOAL * seed_acc
    print(
        f"\nthe largest group alone: {base:.3f}. Least squares: accuracy ≈ {icept:.3f} + "
        f"{slope:.3f}·log2(n) ({slope:.3f} per doubling of the scored sample)."
    )
    if slope > 0:
        need = 2 ** ((target - icept) / slope)
        print(
            f"If that line held (an extrapolation), accuracy {target:.3f} (= {GOAL} × {seed_acc:.3f}) "
            f"would take n ≈ {need:,.0f} scored documents ({need / len(pool):,.0f}× the largest n here)."
        )
    else:
        print("Accuracy does not grow with n here: more scored documents would not reach the goal.")
    half = 1.96 * np.sqrt(ys[-1] * (1 - ys[-1]) / len(test))
    print(
        f"One held-out set of {len(test)} documents: a single accuracy near {ys[-1]:.2f} has a 95% "
        f"binomial half-width of ±{half:.3f}; the repeats' range shows only the training subsets' spread."
    )
    print(f"seconds: {time.perf_counter() - start:.1f}")


if __name__ == "__main__":
    main()
