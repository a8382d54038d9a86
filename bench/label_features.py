"""Held-out agreement of the group predictor by feature kind: hashed n-grams, the proxy's mean
hidden state, or both (issue 13, item 1), on one published mixture's scored documents.

The same documents, groups, holdout split (per-group, seeded) and linear model for each kind;
only the features differ. Also the time to featurise and predict, per document.

    python bench/label_features.py --store runs/demo/store --checkpoints runs/demo/proxy
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from automixer.cli import DEFAULT_DATA
from automixer_core.checkpoints import discover_checkpoints, load_checkpoint
from automixer_core.corpus import iter_documents
from automixer_core.labels.config import PredictorConfig
from automixer_core.labels.embedding import mean_hidden_states
from automixer_core.labels.predictor import train_group_predictor
from automixer_core.store import Store
from tasks.labels import read_membership


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", default="runs/demo/store")
    ap.add_argument("--checkpoints", default="runs/demo/proxy")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_DATA / "corpus")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    latest = Store(args.store).read_json("mixtures/latest.json")
    membership = read_membership(latest["uri"])
    wanted = set(membership["doc_id"])
    texts = {d.id: d.text for d in iter_documents(str(args.corpus)) if d.id in wanted}
    ids = membership["doc_id"].tolist()
    docs = [texts[i] for i in ids]
    groups = membership["group"].astype(str).tolist()
    last = discover_checkpoints(args.checkpoints).checkpoints[-1]
    model, tokenizer = load_checkpoint(last, device="cpu")
    config = PredictorConfig(min_docs_per_group=2)
    t0 = time.perf_counter()
    hidden = mean_hidden_states(model, tokenizer, docs, max_tokens=config.hidden_max_tokens)
    embed_s = time.perf_counter() - t0
    cache = dict(zip(docs, hidden, strict=True))

    def embed(batch: list[str]) -> Any:
        import numpy as np

        return np.stack([cache[t] for t in batch])

    rows = []
    for kind in ("ngrams", "hidden_state", "both"):
        cfg = config.model_copy(update={"features": kind})
        t0 = time.perf_counter()
        _, report = train_group_predictor(docs, groups, None, cfg, embed=None if kind == "ngrams" else embed)
        rows.append(
            {
                "features": kind,
                "accuracy": report.accuracy,
                "macro_f1": report.macro_f1,
                "n_train": report.n_train,
                "n_holdout": report.n_holdout,
                "fit_s": time.perf_counter() - t0,
            }
        )
    print(
        f"mixture {latest['id']}: {len(docs)} scored documents, {len(set(groups))} groups; "
        f"hidden states of {last.name}: {embed_s / len(docs) * 1000:.1f} ms/document"
    )
    print(f"{'features':<14}{'accuracy':>10}{'macro-F1':>10}{'train':>7}{'holdout':>9}{'fit s':>8}")
    for r in rows:
        print(
            f"{r['features']:<14}{r['accuracy']:>10.3f}{r['macro_f1']:>10.3f}{r['n_train']:>7}"
            f"{r['n_holdout']:>9}{r['fit_s']:>8.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "embed_ms_per_doc": embed_s / len(docs) * 1000}))


if __name__ == "__main__":
    main()
