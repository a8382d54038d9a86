"""The aggregation options (:class:`AggregationConfig`), its result (:class:`Aggregation`) and
the names it shares: the residual group, the score-column prefix, the unlabelled-domain label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

RESIDUAL = "residual"
SCORE_PREFIX = "score__"
UNLABELLED = "(unlabelled)"

StepValue = int | float | Sequence[int] | Sequence[float]


class AggregationConfig(BaseModel):
    """How scores become groups and weights (DESIGN §1 steps 4-6)."""

    model_config = ConfigDict(extra="forbid")

    alpha: Literal["step", "uniform"] = Field(
        "step", description="α_b ∝ s_(b), the artifact step (paper), or uniform 1/B"
    )
    min_weight: float = Field(
        0.0, ge=0.0, lt=1.0, description="floor for every weight; groups with density ≤ 0 get exactly this"
    )
    residual: bool = Field(True, description="route documents by residual_rule to the group `residual`")
    residual_rule: Literal["negative_joint", "all_negative"] = Field(
        "negative_joint",
        description="negative_joint: a document with I_joint < residual_threshold is harmful overall and "
        "goes to residual | all_negative: only documents negative for every benchmark do",
    )
    residual_threshold: float = Field(
        0.0, description="negative_joint: documents with I_joint below this go to residual"
    )
    residual_domains: Literal["relative", "confident", "negative", "off"] = Field(
        "relative",
        description="documents of a labelled domain go to residual when its joint density ρ_d is: below "
        "−residual_scale × the median |ρ| of the domains (relative) | below residual_threshold at the "
        "residual_level bootstrap quantile (confident) | below residual_threshold (negative) | never (off)",
    )
    residual_scale: float = Field(
        0.5,
        ge=0.0,
        description="relative: a domain is harmful when ρ_d < −residual_scale · median_d' |ρ_d'|, so a "
        "domain near 0 (a skill the checkpoint already knows) stays",
    )
    residual_level: float = Field(
        0.75,
        ge=0.5,
        lt=1.0,
        description="confident: the one-sided bootstrap level; a domain moves when this quantile of its "
        "density is below residual_threshold (0.75: harmful with odds 3:1)",
    )
    normalize: Literal["none", "zscore", "rank"] = Field(
        "rank",
        description="per-benchmark scaling of the scores before the argmax grouping (the joint influence "
        "and densities stay raw): none | zscore (mean 0, std 1 per benchmark) | rank (percentile)",
    )
    bootstrap: int = Field(200, ge=0, description="bootstrap resamples of documents (0: no intervals)")
    ci: float = Field(0.9, gt=0.0, lt=1.0, description="coverage of the percentile intervals")
    seed: int = Field(0, description="seed of the bootstrap resampling")


@dataclass
class Aggregation:
    """The result of :func:`aggregate`.

    Attributes:
        groups: one row per non-empty group (benchmarks in the order given, ``residual`` last):
            ``name, weight, weight_ci`` ((lo, hi) or None without bootstrap), ``tokens,
            documents, mean_doc_tokens, density, floored, driven_by`` (list of dicts
            ``{benchmark, share, contribution}``).
        domains: the same columns less ``driven_by``, one row per domain label; None when the
            table has no ``domain`` column.
        membership: one row per document: ``doc_id, group, joint_score, n_tokens`` (and
            ``domain`` when present), in input order.
        alpha: α_b per benchmark (sums to 1).
        steps: s_(b) per benchmark as used for α.
        benchmarks: benchmark names in column order.
        config: the options used.
        notes: plain-language remarks (fallbacks, floored groups, benchmarks with no documents).
        weight_samples: [R, G] bootstrap weights in ``groups`` row order (None without bootstrap).
        domain_weight_samples: [R, D] the same for ``domains``.
        residual_moves: per residual rule that moved a document, ``{rule, documents, tokens,
            by_domain}`` (``by_domain``: label → documents; empty without labels).
    """

    groups: pd.DataFrame
    domains: pd.DataFrame | None
    membership: pd.DataFrame
    alpha: dict[str, float]
    steps: dict[str, float]
    benchmarks: list[str]
    config: AggregationConfig
    notes: list[str] = field(default_factory=list)
    weight_samples: np.ndarray | None = None
    domain_weight_samples: np.ndarray | None = None
    residual_moves: list[dict[str, Any]] = field(default_factory=list)

    @property
    def weights(self) -> dict[str, float]:
        """Group name → weight."""
        return {str(n): float(w) for n, w in zip(self.groups["name"], self.groups["weight"], strict=True)}

    @property
    def floored(self) -> list[str]:
        """Names of the groups whose weight was set by the floor, not by their density."""
        return [str(n) for n in self.groups.loc[self.groups["floored"], "name"]]
