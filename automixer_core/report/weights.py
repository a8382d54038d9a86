"""The weights sections: per group and per domain, the mixture weight next to the corpus token
share (table and paired bar chart)."""

from __future__ import annotations

from collections.abc import Sequence

from automixer_core.mixture import Mixture, MixtureDomain, MixtureGroup
from automixer_core.plots import REPORT_DPI, weights_plot
from automixer_core.report.common import esc, img, interval, pct, table

WEIGHT_RULE = (
    "A group's weight is proportional to its density, the mean influence per token of its documents "
    "on the benchmarks (each benchmark counted by α, the share of its artifact checkpoint's step); "
    "a group whose density is zero or negative gets the floor weight (min_weight{floor}) instead. "
    "So a group that holds few of the corpus's tokens but whose documents help the benchmarks a lot "
    "can get a large weight: compare the weight with the corpus token share."
)


def token_shares(entries: Sequence[MixtureGroup] | Sequence[MixtureDomain]) -> dict[str, float]:
    """name → T / Σ T: each entry's share (0-1) of the scored documents' tokens."""
    total = sum(e.tokens for e in entries)
    return {e.name: (e.tokens / total if total else 0.0) for e in entries}


def driven_by(group: MixtureGroup, top: int = 3) -> str:
    """The benchmarks behind a group's density, e.g. ``"arc_easy 60%, piqa 30%"`` (plain text)."""
    return ", ".join(f"{d.benchmark} {100 * d.share:.0f}%" for d in group.driven_by[:top] if d.share > 0)


def headers(what: str, ci_level: float | None) -> list[str]:
    """The weight table's column headers, each with its unit."""
    ci = f"{ci_level:.0%} bootstrap interval" if ci_level is not None else "bootstrap interval"
    return [
        what,
        "weight (% of training tokens)",
        ci,
        "corpus token share (% of scored tokens)",
        "tokens",
        "documents",
        "tokens/doc",
        "density (mean influence per token, arbitrary units)",
        "floored",
    ]


def rows(entries: Sequence[MixtureGroup] | Sequence[MixtureDomain], drivers: bool) -> list[list[str]]:
    """One row of escaped cells per entry, largest weight first."""
    share = token_shares(entries)
    out = []
    for e in sorted(entries, key=lambda x: (-x.weight, x.name)):
        cells = [
            esc(e.name),
            pct(e.weight),
            interval(e.weight_ci),
            pct(share[e.name]),
            f"{e.tokens:,}",
            f"{e.documents:,}",
            f"{e.mean_doc_tokens:,.1f}",
            f"{e.density:.3g}",
            "yes" if e.floored else "",
        ]
        if drivers and isinstance(e, MixtureGroup):
            cells.append(esc(driven_by(e)))
        out.append(cells)
    return out


def weights_section(
    mixture: Mixture, *, ci_level: float | None = None, min_weight: float | None = None, dpi: int = REPORT_DPI
) -> str:
    """The group and (where the corpus has labels) domain weight sections."""
    ci_label = f"{ci_level:.0%} bootstrap interval" if ci_level is not None else "bootstrap interval"
    floor = f" = {pct(min_weight)}" if min_weight is not None else ""
    parts = [
        "<h2 id='weights'>Group weights</h2>",
        f"<p>{esc(WEIGHT_RULE.format(floor=floor))} Intervals resample the scored documents "
        "(bootstrap percentile intervals).</p>",
        table(
            [*headers("group", ci_level), "driven by (share of the density)"],
            rows(mixture.groups, drivers=True),
            text_columns=(9,),
        ),
        img(
            weights_plot(mixture.groups, "Group weights and token shares", ci_label=ci_label, dpi=dpi),
            "group weights",
        ),
    ]
    if mixture.domains:
        parts += [
            "<h2 id='domains'>Per-domain weights</h2>",
            "<p>The same rule with the corpus's own domain labels as the groups: the weights a trainer "
            "that samples by domain would use.</p>",
            table(headers("domain", ci_level), rows(mixture.domains, drivers=False)),
            img(
                weights_plot(
                    mixture.domains, "Per-domain weights and token shares", ci_label=ci_label, dpi=dpi
                ),
                "domain weights",
            ),
        ]
    return "\n".join(parts)
