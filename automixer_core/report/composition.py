"""Where the groups come from: group × domain and benchmark × group heatmaps, the joint-score
distributions and the joint score against document length."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from automixer_core.mixture import SCORE_COLUMN_PREFIX
from automixer_core.plots import (
    REPORT_DPI,
    density_length_plot,
    heatmap_plot,
    label_share,
    mean_scores_table,
    row_scaled,
    score_distributions_plot,
    share_table,
)
from automixer_core.report.common import img


def composition_section(
    membership: pd.DataFrame, groups: Sequence[str], benchmarks: Sequence[str], *, dpi: int = REPORT_DPI
) -> str:
    """The section's HTML.

    Args:
        membership: one row per scored document: ``group, joint_score, n_tokens``, optionally
            ``domain`` and ``score__<benchmark>`` columns.
        groups: the groups in display order.
        benchmarks: the benchmarks (rows of the benchmark × group heatmap).
        dpi: figure resolution.
    """
    parts = ["<h2 id='composition'>What the groups hold</h2>"]
    order = [g for g in groups if g in set(membership["group"])]
    if "domain" in membership.columns:
        shares = share_table(membership, "group", "domain").reindex(order)
        shares.index.name, shares.columns.name = "group", "domain"
        parts += [
            "<p>Each row is a group; each cell the share of the group's tokens that come from a corpus "
            "domain (rows sum to 100%).</p>",
            img(
                heatmap_plot(
                    shares,
                    title="Group × domain: share of the group's tokens",
                    colorbar_label="share of the group's tokens (0-1)",
                    annotations=shares.map(label_share),
                    dpi=dpi,
                ),
                "group by domain heatmap",
            ),
        ]
    means = mean_scores_table(membership, benchmarks, SCORE_COLUMN_PREFIX)
    if not means.empty:
        means = means.reindex(columns=order)
        parts += [
            "<p>Each cell: the mean influence per token of the group's documents on one benchmark, at "
            "that benchmark's artifact checkpoint (arbitrary units; benchmarks are on different scales, "
            "so each row's colours are scaled by its largest absolute value; the numbers are raw).</p>",
            img(
                heatmap_plot(
                    row_scaled(means),
                    title="Benchmark × group: mean per-benchmark score",
                    colorbar_label="mean score / largest |mean| of the benchmark",
                    annotations=means.map(lambda v: f"{v:.2g}"),
                    diverging=True,
                    dpi=dpi,
                ),
                "benchmark by group heatmap",
            ),
        ]
    parts += [
        "<h2 id='scores'>Joint scores</h2>",
        "<p>The joint score of a document is its influence per token summed over the benchmarks "
        "(each counted by α); a group's density is the token-weighted mean of its documents' joint "
        "scores. Units are arbitrary: only signs and ratios matter.</p>",
        img(score_distributions_plot(membership, order, dpi=dpi), "score distributions"),
        "<p>Longer documents weigh more in a density (it is per token): the black line is the "
        "token-weighted mean joint score of the documents in each length bin.</p>",
        img(density_length_plot(membership, dpi=dpi), "joint score against document length"),
    ]
    return "\n".join(parts)
