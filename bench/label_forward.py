"""How much of a document's influence score does a forward pass determine? (issue 13)

With tied embeddings the embed/head block's score of a document is a sum of two uses
(DESIGN §2): I_b(x) = head_b(x) + embed_b(x), with

    head_b(x)  = (1/(N−1)) Σ_t δ_tᵀ Q_b a_t      δ_t = softmax(z_t) − onehot(x_{t+1}), a_t the head's input
    embed_b(x) = (1/(N−1)) Σ_t Q_b[x_t] · ∂ℓ/∂e_t  (the gradient at the input embedding: a backward)

The head use needs the forward pass only: ⟨Q_b, Σ_t δ_t a_tᵀ⟩, a [V, d] outer product per document.
A labeller that runs the artifact checkpoint forward can therefore compute it exactly, at the cost
of a forward instead of a forward + backward. This bench measures what that buys, on one published
mixture's scored documents:

- the head term by a plain no-grad forward (this file), checked against the influence engine's own
  head-only score (the checkpoint untied, ``layers: [lm_head]``) on ``--check`` documents, and the
  engine's full score there against the mixture's stored scores (which also picks the query file of
  the mixture's Hessian sample among those in the store);
- R² of the head term against the full score, per benchmark;
- groups, by 5-fold stratified CV as bench/label_targets.py: the rule applied to the head term alone
  (normalised against the training fold's head terms); Ridge (α by GCV) of the full scores on the K
  head terms; and on head terms + the proxy's token frequencies (label_targets' (d) features);
- throughput on the same documents in the same process: the engine's full scoring (forward +
  backward) against the forward-only head term, documents/s, one checkpoint.

    OMP_NUM_THREADS=1 python bench/label_forward.py --world planted --out runs/demo-planted \
        --mixture a164dbadcbe6a0f0 --seed-mixture fd0d51a491363e55
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from label_targets import (
    DEFAULT_DATA,
    _frequencies,
    _groups,
    _r2,
    _ridge_gcv,
    _row,
    fold_rule,
    load_scored,
    seed_yardstick,
)
from sklearn.model_selection import StratifiedKFold
from torch import nn

from automixer_core.checkpoints import load_checkpoint
from automixer_core.errors import InfluenceError
from automixer_core.influence.config import InfluenceConfig
from automixer_core.influence.queries import QueryVectors
from automixer_core.influence.scorer import score_documents
from automixer_core.influence.windows import document_rows


def head_terms(
    model: nn.Module, docs: Sequence[Sequence[int]], q: torch.Tensor, window: int, batch_size: int = 16
) -> np.ndarray:
    """[D, K] head-use terms of the embed/head score by a no-grad forward.

    Args:
        model: the checkpoint's causal LM (tied or not; only its head's input and output are read).
        docs: D token-id lists (documents of fewer than 2 tokens get 0).
        q: [K, V, d] the query blocks of the head weight (parameter layout).
        window: the scorer's context window (rows as ``windows.document_rows``).
    """
    head = model.get_output_embeddings()
    seen: dict[str, torch.Tensor] = {}
    hook = head.register_forward_hook(lambda m, i, o: seen.update(a=i[0], z=o))
    rows = [r for d, ids in enumerate(docs) for r in document_rows(d, ids, window)]
    rows.sort(key=lambda r: -len(r.input_ids))
    out = torch.zeros(len(docs), q.shape[0], dtype=torch.float64)
    qf = q.reshape(q.shape[0], -1)  # [K, V·d]
    try:
        with torch.no_grad():
            for s in range(0, len(rows), batch_size):
                batch = rows[s : s + batch_size]
                width = len(batch[0].input_ids)
                ids = torch.zeros(len(batch), width, dtype=torch.long)
                mask = torch.zeros(len(batch), width, dtype=torch.long)
                for i, r in enumerate(batch):
                    ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
                    mask[i, : len(r.input_ids)] = 1
                model(input_ids=ids, attention_mask=mask)
                a, z = seen["a"][:, :-1], seen["z"][:, :-1].float()  # [B, L−1, d], [B, L−1, V]
                delta = torch.softmax(z, dim=-1)
                target = ids[:, 1:]
                valid = (mask[:, 1:] == 1).float()  # prediction p is made when token p+1 exists
                delta.scatter_add_(
                    -1, target[..., None], -torch.ones_like(target[..., None], dtype=delta.dtype)
                )
                delta = delta * valid[..., None]
                g = torch.bmm(delta.transpose(1, 2), a.float())  # [B, V, d]: Σ_t δ_t a_tᵀ per row
                terms = (g.reshape(len(batch), -1) @ qf.T).double()  # [B, K]
                for i, r in enumerate(batch):
                    out[r.seq] += terms[i] * r.weight
    finally:
        hook.remove()
    return out.numpy()


def _untied(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose head has its own weight (equal values), so the engine can score
    the head use alone."""
    m = copy.deepcopy(model)
    head = m.get_output_embeddings()
    head.weight = nn.Parameter(head.weight.detach().clone())
    return m


def _module_name(model: nn.Module, target: nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is target)


def _queries(
    store: Path, fingerprint: str, benchmarks: list[str], model: nn.Module, docs: list[list[int]],
    truth: np.ndarray, inf: InfluenceConfig,
) -> tuple[QueryVectors, float]:  # fmt: skip
    """The stored query vectors of ``benchmarks`` at one checkpoint that reproduce the mixture's
    scores of ``docs`` (``truth`` [n, K]); the largest relative error of the engine's full score."""
    chosen: list[QueryVectors] = []
    worst = 0.0
    for j, b in enumerate(benchmarks):
        best: tuple[float, QueryVectors] | None = None
        for f in sorted((store / "queries" / fingerprint / b).glob("*.safetensors")):
            qv = QueryVectors.load(f)
            try:
                got = score_documents(model, [(str(i), d) for i, d in enumerate(docs)], qv, inf).scores[:, 0]
            except InfluenceError:  # built with another estimator, layer selection or Adam flag
                continue
            err = float(np.abs(got - truth[:, j]).max() / np.abs(truth[:, j]).max())
            if best is None or err < best[0]:
                best = (err, qv)
        if best is None:
            raise SystemExit(f"no query vectors of {b} at {fingerprint} in {store}")
        worst = max(worst, best[0])
        chosen.append(best[1])
    return QueryVectors.concat(chosen), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=Path("runs/demo"))
    ap.add_argument("--world", choices=["real", "planted"], default="real")
    ap.add_argument("--mixture", default=None, help="mixture id in OUT/store (default: the latest)")
    ap.add_argument("--seed-mixture", default=None, help="the same documents scored with Hessian seed 1")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", type=int, default=48, help="documents checked against the engine")
    ap.add_argument("--time-docs", type=int, default=300, help="documents timed per side")
    ap.add_argument("--bigram-bits", type=int, default=18)
    args = ap.parse_args()
    start = time.perf_counter()

    sc = load_scored(args.data, args.out, args.world, args.mixture)
    inf, store, prov = sc.config.influence, args.out / "store", sc.mixture.provenance
    benchmarks, y, truth, ids = sc.benchmarks, sc.scores, sc.groups, sc.token_ids
    fingerprints = {c.name: c.fingerprint for c in prov.checkpoints}
    if any(len(t) != n for t, n in zip(ids, sc.n_tokens, strict=True)):
        raise SystemExit("the tokenizer does not give the scored token counts; wrong world or corpus?")

    n, nb = y.shape
    head = np.zeros((n, nb))
    checks: list[str] = []
    timing: dict[str, float] = {}
    by_ckpt: dict[str, list[int]] = {}
    for j, a in enumerate(prov.artifacts):
        by_ckpt.setdefault(a.checkpoint, []).append(j)
    for ckpt, cols in by_ckpt.items():
        model, _ = load_checkpoint(args.out / "proxy" / ckpt, dtype=torch.float32)
        if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
            raise SystemExit(f"{ckpt} does not tie its embeddings: the head use has its own query block")
        names = [benchmarks[j] for j in cols]
        sub = ids[: args.check]
        qv, full_err = _queries(store, fingerprints[ckpt], names, model, sub, y[: args.check][:, cols], inf)
        emb_param = next(n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight)
        q = torch.stack([qv.blocks[emb_param][k] for k in range(len(names))])  # [K, V, d]
        window = int(qv.metadata["window"])
        t = time.perf_counter()
        head[:, cols] = head_terms(model, ids, q, window, inf.batch_size)
        fwd_s = time.perf_counter() - t
        # the oracle: the engine's own score of the head use alone, on an untied copy
        untied = _untied(model)
        head_name = _module_name(untied, untied.get_output_embeddings())
        head_qv = QueryVectors(
            names, {f"{head_name}.weight": q}, qv.estimator, [head_name], qv.adam, dict(qv.metadata)
        )
        head_inf = inf.model_copy(update={"layers": [head_name]})
        eng = score_documents(untied, [(str(i), d) for i, d in enumerate(sub)], head_qv, head_inf).scores
        head_err = float(np.abs(eng - head[: args.check, cols]).max() / np.abs(eng).max())
        checks.append(
            f"{ckpt}: engine full score vs stored {full_err:.1e}, forward head term vs engine head-only "
            f"{head_err:.1e} (largest difference / largest value, {len(sub)} documents)"
        )
        if full_err > 1e-3 or head_err > 1e-3:
            raise SystemExit("the oracle check failed:\n" + "\n".join(checks))
        if not timing:  # throughput on the first checkpoint, the same documents, this process
            docs_t = ids[: args.time_docs]
            t = time.perf_counter()
            score_documents(model, [(str(i), d) for i, d in enumerate(docs_t)], qv, inf)
            timing["score (forward + backward), docs/s"] = len(docs_t) / (time.perf_counter() - t)
            t = time.perf_counter()
            head_terms(model, docs_t, q, window, inf.batch_size)
            timing["head term (forward only), docs/s"] = len(docs_t) / (time.perf_counter() - t)
            timing["all documents' head terms, s"] = fwd_s

    seed_acc, seed_note, _ = seed_yardstick(args.out, args.seed_mixture, sc, args.world)

    x_head = sp.csr_matrix(head)
    x_head_tok = sp.csr_matrix(sp.hstack([x_head, _frequencies(ids, len(sc.tokenizer), args.bigram_bits)]))
    groups = {k: np.empty(n, dtype=object) for k in ("true", "alone", "ridge", "ridge_tok")}
    pred = {k: np.zeros((n, nb)) for k in ("ridge", "ridge_tok")}
    for tr, te in StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(np.zeros(n), truth):
        rule = fold_rule(sc, tr, te)
        groups["true"][te] = _groups(y[te], y[tr], **rule)
        groups["alone"][te] = _groups(head[te], head[tr], **rule)
        for key, x in (("ridge", x_head), ("ridge_tok", x_head_tok)):
            pred[key][te] = _ridge_gcv(x[tr], y[tr], x[te])[0]
            groups[key][te] = _groups(pred[key][te], y[tr], **rule)

    r2 = {
        "head term itself (scale-free: R² of the best line)": [
            float(np.corrcoef(head[:, j], y[:, j])[0, 1] ** 2) for j in range(nb)
        ],
        "Ridge on the K head terms": [_r2(y[:, j], pred["ridge"][:, j]) for j in range(nb)],
        "Ridge on head terms + token frequencies": [_r2(y[:, j], pred["ridge_tok"][:, j]) for j in range(nb)],
    }
    embed = y - head  # the input-embedding use (by linearity of the tied block's score)
    var = y.var(axis=0)
    shares = {
        "var(head) / var(full)": head.var(axis=0) / var,
        "var(embed) / var(full)": embed.var(axis=0) / var,
        "2 cov(head, embed) / var(full)": 2
        * np.array([np.cov(head[:, j], embed[:, j], bias=True)[0, 1] for j in range(nb)])
        / var,
    }
    print("\nChecks: " + "; ".join(checks))
    print(f"\n| share of the full score's variance | {' | '.join(benchmarks)} |")
    print("|---|" + "---|" * nb)
    for name, vals in shares.items():
        print(f"| {name} | {' | '.join(f'{v:.3f}' for v in vals)} |")
    print(f"\n| R² against the full score | {' | '.join(benchmarks)} |")
    print("|---|" + "---|" * nb)
    for name, vals in r2.items():
        print(f"| {name} | {' | '.join(f'{v:.3f}' for v in vals)} |")

    rows = [
        _row("full scores through the rule", truth, groups["true"], seed_acc),
        _row("head term alone through the rule", truth, groups["alone"], seed_acc),
        _row("Ridge on the K head terms", truth, groups["ridge"], seed_acc),
        _row("Ridge on head terms + token frequencies", truth, groups["ridge_tok"], seed_acc),
    ]
    print("\n| groups from | accuracy | macro-F1 | / seed |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['ratio']:.2f} |")
    print(f"| Hessian seed 1 vs seed 0 ({seed_note}) | {seed_acc:.3f} | | 1.00 |")
    print(
        f"\nmixture {sc.mixture_id}: {n} documents, {len(set(truth))} groups; {args.folds}-fold stratified CV, "
        f"seed {args.seed}; threads {torch.get_num_threads()}"
    )
    print("timing: " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))
    if len(timing) >= 2:
        ratio = timing["head term (forward only), docs/s"] / timing["score (forward + backward), docs/s"]
        print(f"forward-only head term / full scoring, documents/s: {ratio:.2f}×")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
