"""Can a small network learn the scores? Fine-tune the proxy itself to regress them (issue 13).

bench/label_forward.py shows that a trained proxy's scores live mostly in the input-embedding use,
which needs the backward. A labeller could still *learn* them, as MATES trains a BERT-base on
oracle influence. This bench tries the strongest learner this machine can train on a scored sample:
the artifact checkpoint itself, every weight trainable, with a linear head on its mean last hidden
state regressing the K standardised scores (MSE, AdamW), on the same 5-fold stratified CV as
bench/label_targets.py. Held-out groups follow from the predicted scores by the mixture's own rule
(normalised against the training fold's scored values). Documents are cut to the scorer's window.

The labeller costs a forward pass of a model the size of the proxy, so it is no cheaper than the
forward-only head use; the question is only whether the scored sample holds enough to learn the
groups at all (if not here, a cheap model will not either).

    OMP_NUM_THREADS=2 python bench/label_distill.py --world planted --out runs/demo-planted \\
        --mixture a164dbadcbe6a0f0 --seed-mixture fd0d51a491363e55
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from label_targets import DEFAULT_DATA, _groups, _r2, _row, fold_rule, load_scored, seed_yardstick
from sklearn.model_selection import StratifiedKFold
from torch import nn

from automixer_core.checkpoints import load_checkpoint


class Regressor(nn.Module):
    """The checkpoint's decoder body, mean-pooled over real tokens, and a linear head: [B, T] → [B, K]."""

    def __init__(self, lm: nn.Module, k: int) -> None:
        super().__init__()
        self.body = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.base_model
        self.head = nn.Linear(lm.config.hidden_size, k)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.body(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, T, d]
        m = mask[..., None].to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1).clamp_min(1.0))


def _batch(docs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(d) for d in docs))
    ids = torch.zeros(len(docs), width, dtype=torch.long)
    mask = torch.zeros(len(docs), width, dtype=torch.long)
    for i, d in enumerate(docs):
        ids[i, : len(d)] = torch.tensor(d, dtype=torch.long)
        mask[i, : len(d)] = 1
    return ids, mask


def _predict(model: Regressor, docs: list[list[int]], batch_size: int) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(docs), batch_size):
            out.append(model(*_batch(docs[s : s + batch_size])).numpy())
    return np.concatenate(out)


def fit_predict(
    checkpoint: Path,
    docs: list[list[int]],
    y: np.ndarray,
    tr: np.ndarray,
    te: np.ndarray,
    args: argparse.Namespace,
) -> np.ndarray:
    """Fine-tune a fresh copy of ``checkpoint`` on ``tr`` and predict the scores of ``te`` [len(te), K]."""
    torch.manual_seed(args.seed)
    lm, _ = load_checkpoint(checkpoint, dtype=torch.float32)
    model = Regressor(lm, y.shape[1])
    mean, std = y[tr].mean(0), y[tr].std(0)
    std = np.where(std > 0, std, 1.0)
    target = torch.tensor((y - mean) / std, dtype=torch.float32)
    opt = torch.optim.AdamW(
        [
            {"params": model.body.parameters(), "lr": args.lr_body},
            {"params": model.head.parameters(), "lr": args.lr_head},
        ],
        weight_decay=0.01,
    )
    rng = np.random.default_rng(args.seed)
    for _ in range(args.epochs):
        model.train()
        order = rng.permutation(tr)
        for s in range(0, len(order), args.batch_size):
            idx = order[s : s + args.batch_size]
            loss = nn.functional.mse_loss(model(*_batch([docs[i] for i in idx])), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    pred = _predict(model, [docs[i] for i in te], args.batch_size)
    return pred * std + mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("runs/demo-planted"))
    ap.add_argument("--world", choices=["real", "planted"], default="planted")
    ap.add_argument("--mixture", default=None)
    ap.add_argument("--seed-mixture", default=None)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only-folds", type=int, default=None, help="run the first N folds only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr-body", type=float, default=3e-4)
    ap.add_argument("--lr-head", type=float, default=3e-3)
    ap.add_argument("--window", type=int, default=256, help="tokens kept per document (the scorer's window)")
    ap.add_argument("--checkpoint", default=None, help="default: the last artifact checkpoint")
    args = ap.parse_args()
    start = time.perf_counter()

    sc = load_scored(args.data, args.out, args.world, args.mixture)
    benchmarks, y, truth = sc.benchmarks, sc.scores, sc.groups
    docs = [t[: args.window] for t in sc.token_ids]
    checkpoint = args.checkpoint or max(sc.mixture.provenance.artifacts, key=lambda a: a.step).checkpoint

    n, nb = y.shape
    pred = np.full((n, nb), np.nan)
    groups = {k: np.empty(n, dtype=object) for k in ("true", "distilled")}
    done = np.zeros(n, dtype=bool)
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(np.zeros(n), truth))
    for tr, te in folds[: args.only_folds]:
        t = time.perf_counter()
        rule = fold_rule(sc, tr, te)
        pred[te] = fit_predict(args.out / "proxy" / checkpoint, docs, y, tr, te, args)
        groups["true"][te] = _groups(y[te], y[tr], **rule)
        groups["distilled"][te] = _groups(pred[te], y[tr], **rule)
        done[te] = True
        acc = float(np.mean(groups["distilled"][te] == truth[te]))
        print(
            f"fold: {len(tr)} train, {len(te)} held out, accuracy {acc:.3f}, {time.perf_counter() - t:.0f} s"
        )

    seed_acc, seed_note, _ = seed_yardstick(args.out, args.seed_mixture, sc, args.world)
    r2 = [_r2(y[done, j], pred[done, j]) for j in range(nb)]
    print(f"\n| R² of the fine-tuned proxy's scores, held out | {' | '.join(benchmarks)} |")
    print("|---|" + "---|" * nb)
    print(f"| {checkpoint}, {args.epochs} epochs | {' | '.join(f'{v:.3f}' for v in r2)} |")
    rows = [
        _row("full scores through the rule", truth[done], groups["true"][done], seed_acc),
        _row(
            "fine-tuned proxy's predicted scores through the rule",
            truth[done],
            groups["distilled"][done],
            seed_acc,
        ),
    ]
    print("\n| groups from | accuracy | macro-F1 | / seed |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['ratio']:.2f} |")
    print(f"| Hessian seed 1 vs seed 0 ({seed_note}) | {seed_acc:.3f} | | 1.00 |")
    print(
        f"\nmixture {sc.mixture_id}: {int(done.sum())} of {n} documents held out once ({len(folds[: args.only_folds])} "
        f"of {args.folds} folds, seed {args.seed}); threads {torch.get_num_threads()}; "
        f"total {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
