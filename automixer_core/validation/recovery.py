"""How well a mixture's groups recover a known truth (a planted world: domain k teaches benchmark k).

Agreement of the groups with the planted domains, over the documents of relevant domains only
(distractors have no true benchmark): the adjusted Rand index and the adjusted mutual information
(scikit-learn's), 1 = the same partition, ≈0 = chance. And where the weight goes: the mixture's
per-domain weight summed over relevant, distractor and harmful domains.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score


def group_recovery(
    membership: pd.DataFrame,
    teaches: Mapping[str, str],
    domain_weights: Mapping[str, float] | None = None,
    *,
    distractors: Sequence[str] = (),
    harmful: Sequence[str] = (),
) -> dict[str, Any]:
    """Agreement of ``membership`` (``doc_id, group, domain``) with the planted truth.

    Args:
        membership: one row per scored document, with its ``group`` and ``domain``.
        teaches: domain → the benchmark it teaches (the relevant domains).
        domain_weights: the mixture's per-domain weights, for the weight shares.
        distractors: domains with nothing relevant.
        harmful: domains stating wrong facts.

    Returns:
        ``ari``, ``ami`` (over relevant-domain documents), ``correct``: the fraction of them whose
        group is the benchmark their domain teaches, ``confusion``: domain → group → documents
        (every domain), and with ``domain_weights`` the weight on relevant / distractor / harmful
        domains.
    """
    relevant = membership[membership["domain"].isin(list(teaches))]
    truth = relevant["domain"].map(dict(teaches))
    out: dict[str, Any] = {
        "documents": len(relevant),
        "ari": float(adjusted_rand_score(truth, relevant["group"])) if len(relevant) else float("nan"),
        "ami": float(adjusted_mutual_info_score(truth, relevant["group"])) if len(relevant) else float("nan"),
        "correct": float((truth == relevant["group"]).mean()) if len(relevant) else float("nan"),
        "confusion": {
            str(d): {str(g): int(c) for g, c in rows["group"].value_counts().items()}
            for d, rows in membership.groupby("domain", sort=True)
        },
    }
    if domain_weights is not None:
        out["weight_relevant"] = float(sum(w for d, w in domain_weights.items() if d in teaches))
        out["weight_distractor"] = float(sum(w for d, w in domain_weights.items() if d in distractors))
        out["weight_harmful"] = float(sum(w for d, w in domain_weights.items() if d in harmful))
    return out
