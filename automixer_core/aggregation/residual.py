"""Step 5's residual rules: which labelled domains are harmful (the domain rule), and the record
and the plain-language note of what each rule moved out of the weighted groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automixer_core.aggregation.config import AggregationConfig
from automixer_core.aggregation.weights import _bootstrap, _densities


def _move_record(rule: str, moved: np.ndarray, n: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    by_domain: dict[str, int] = {}
    if labels is not None:
        counts = pd.Series(labels[moved]).value_counts()
        by_domain = {str(d): int(c) for d, c in counts.items()}
    return {
        "rule": rule,
        "documents": int(moved.sum()),
        "tokens": int(n[moved].sum()),
        "by_domain": by_domain,
    }


_RULE_WORDS = {
    "all_negative": "negative for every benchmark",
    "negative_joint": "with joint influence below {t:g} (but positive for some benchmark)",
    "negative_domain": "of domains whose joint density is below {t:g}",
}


def _move_note(move: dict[str, Any], threshold: float) -> str:
    where = ""
    if move["by_domain"]:
        where = " from " + ", ".join(f"{d} {c}" for d, c in move["by_domain"].items())
    words = _RULE_WORDS[move["rule"]].format(t=threshold)
    return (
        f"residual ({move['rule']}): {move['documents']} documents ({move['tokens']:,} tokens) {words} "
        f"moved out of the weighted groups{where}"
    )


def _harmful_domains(
    dcodes: np.ndarray, kd: int, contrib: np.ndarray, n: np.ndarray, config: AggregationConfig
) -> np.ndarray:
    """[kd] bool: the domains whose joint density is below −scale × the median |ρ| (``relative``),
    or below the threshold (``negative``; ``confident``: the
    ``residual_level`` quantile of its bootstrap densities, over the same resamples as the weights'
    intervals; the density itself without bootstrap)."""
    rho = _densities(dcodes, contrib, n, kd)[0]
    if config.residual_domains == "relative":
        return np.asarray(rho < -config.residual_scale * float(np.median(np.abs(rho))))
    if config.residual_domains == "confident" and config.bootstrap > 0:
        boot = _bootstrap([(dcodes, kd)], contrib, n, config.bootstrap, config.seed)[0]
        rho = np.quantile(boot, config.residual_level, axis=0)
    return np.asarray(rho < config.residual_threshold)
