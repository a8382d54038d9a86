"""A self-contained HTML report of a mixture: should a reader trust it?

One file, ``mixtures/<id>/report.html``, with tables and base64-embedded PNGs and relative links to
the files beside it. Sections, one module each:

- :mod:`.capability`: each benchmark's score over training, the artifact checkpoint, noise flags;
- :mod:`.weights`: group and domain weights next to their corpus token shares;
- :mod:`.composition`: group × domain and benchmark × group heatmaps, joint scores, length;
- :mod:`.samples`: a few documents of every group;
- :mod:`.files`: links to the mixture document, the membership table and the trainer exports;
- :mod:`.validation`: the result of ``automixer validate`` on this mixture, filled in later by
  :func:`with_validation` (the report carries replaceable regions for it).

Every text is escaped; every number carries its unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from automixer_core.aggregation import RESIDUAL, Aggregation
from automixer_core.mixture import Mixture
from automixer_core.plots import REPORT_DPI, noise_flags
from automixer_core.report.capability import capability_section, score_text
from automixer_core.report.common import CSS, esc, notes_list, pct, region, table
from automixer_core.report.composition import composition_section
from automixer_core.report.files import MEMBERSHIP_CONTENT, MEMBERSHIP_SENTENCE, files_section
from automixer_core.report.samples import SampleDocument, pick_samples, sample_document, samples_section
from automixer_core.report.validation import (
    STATUS,
    VALIDATION,
    status_line,
    validation_section,
    with_validation,
)
from automixer_core.report.weights import token_shares, weights_section

__all__ = [
    "MEMBERSHIP_CONTENT",
    "MEMBERSHIP_SENTENCE",
    "SampleDocument",
    "pick_samples",
    "render_report",
    "sample_document",
    "with_validation",
]


def _metric(mixture: Mixture, selection: pd.DataFrame | None) -> str:
    if selection is not None and "metric" in selection.columns and len(selection):
        return str(selection["metric"].iloc[0])
    return mixture.provenance.artifacts[0].metric if mixture.provenance.artifacts else "acc_norm"


def _glance(
    mixture: Mixture, evals: pd.DataFrame | None, selection: pd.DataFrame | None, metric: str
) -> list[str]:
    """The key facts as sentences (HTML, escaped)."""
    groups = mixture.groups
    tokens = sum(g.tokens for g in groups)
    docs = sum(g.documents for g in groups)
    out = [
        f"{docs:,} documents ({tokens:,} tokens) of the corpus were scored and fall into "
        f"{len(groups)} groups."
    ]
    share = token_shares(groups)
    top = sorted(groups, key=lambda g: -g.weight)[:3]
    out.append(
        "Largest weights: "
        + "; ".join(
            f"{esc(g.name)} {pct(g.weight)} of the training tokens, from {pct(share[g.name])} of the "
            "scored tokens"
            for g in top
        )
        + "."
    )
    if selection is not None and not selection.empty:
        if evals is not None and metric in evals.columns:
            flagged = sorted(b for b, f in noise_flags(evals, selection, metric).items() if f)
        elif "within_noise" in selection.columns:
            flagged = sorted(
                {str(b) for b in selection.loc[selection["within_noise"].astype(bool), "benchmark"]}
            )
        else:
            flagged = []
        if flagged:
            one = len(flagged) == 1
            out.append(
                f"<span class='warn'>The artifact checkpoint{'' if one else 's'} of "
                f"{esc(', '.join(flagged))} {'is' if one else 'are'} within noise (within one standard "
                "error of chance or of another checkpoint): the influence scores for "
                f"{'that benchmark carry' if one else 'those benchmarks carry'} little signal.</span> "
                "<a href='#capability'>Capabilities</a>."
            )
        else:
            out.append(
                "Every artifact checkpoint stands more than one standard error above chance and the other checkpoints."
            )
    floored = [g.name for g in groups if g.floored]
    if floored:
        one = len(floored) == 1
        out.append(
            f"Group{'' if one else 's'} {esc(', '.join(floored))} {'has' if one else 'have'} zero or "
            "negative density and got the floor weight."
        )
    residual = next((g for g in groups if g.name == RESIDUAL), None)
    if residual is not None:
        out.append(
            f"{residual.documents:,} documents ({residual.tokens:,} tokens, {pct(share[RESIDUAL])} of the "
            f"scored tokens) are in the group residual, weighted {pct(residual.weight)}."
        )
    return out


def render_report(
    mixture: Mixture,
    aggregation: Aggregation | None = None,
    capability_png: bytes | None = None,
    *,
    membership: pd.DataFrame | None = None,
    evals: pd.DataFrame | None = None,
    selection: pd.DataFrame | None = None,
    samples: Mapping[str, Sequence[SampleDocument]] | None = None,
    samples_problem: str | None = None,
    exports: Sequence[str] | None = None,
    validation: dict[str, Any] | None = None,
    dpi: int = REPORT_DPI,
) -> str:
    """The report as one HTML string (no external files: plots are base64 PNGs).

    Args:
        mixture: the published mixture.
        aggregation: its aggregation (the membership table, the interval level and the floor).
        capability_png: a capability figure to show when ``evals`` is not given.
        membership: one row per document (``doc_id, group, joint_score, n_tokens``, optionally
            ``domain`` and ``score__<benchmark>``); default ``aggregation.membership``. Adds the
            heatmaps and the score plots.
        evals: the evaluation table (``checkpoint, step, benchmark, <metric>``, optionally
            ``<metric>_stderr``, ``chance``, ``n``); the capability panel is drawn from it.
        selection: the artifact table (``benchmark, checkpoint, step, metric, score, within_noise,
            reason``).
        samples: group → the documents to show (:class:`SampleDocument`).
        samples_problem: why sample documents could not be read (shown instead), if so.
        exports: the file names under ``exports/`` (adds the files section with links).
        validation: a validation document of this mixture (see :mod:`.validation`).
        dpi: figure resolution.
    """
    p = mixture.provenance
    metric = _metric(mixture, selection)
    if membership is None and aggregation is not None:
        membership = aggregation.membership
    ci_level = aggregation.config.ci if aggregation is not None else None
    min_weight = aggregation.config.min_weight if aggregation is not None else None
    groups = [g.name for g in sorted(mixture.groups, key=lambda g: (-g.weight, g.name))]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>AutoMixer mixture {esc(mixture.id)}</title><style>{CSS}</style></head><body>",
        f"<h1>AutoMixer mixture <code>{esc(mixture.id)}</code></h1>",
        f"<p class='meta'>Created {esc(p.created_at.strftime('%Y-%m-%d %H:%M UTC'))} · AutoMixer "
        f"{esc(p.code_version)} · influence estimator <code>{esc(p.estimator)}</code> · config "
        f"<code>{esc(p.config_hash)}</code></p>",
        "<p>A mixture gives each group of documents a share of the next training run's tokens. The "
        "groups come from the documents' influence on the benchmarks, measured at the checkpoints of "
        "the training run where each benchmark's capability peaked.</p>",
        "<h2 id='glance'>At a glance</h2><ul>",
        *[f"<li>{s}</li>" for s in _glance(mixture, evals, selection, metric)],
        "</ul>",
        region(STATUS, status_line(validation, mixture.id)),
    ]
    if exports is not None:
        parts.append(files_section(exports))
    parts.append(capability_section(evals, selection, metric, capability_png, dpi=dpi))
    parts.append(weights_section(mixture, ci_level=ci_level, min_weight=min_weight, dpi=dpi))
    if membership is not None and not membership.empty:
        benchmarks = [a.benchmark for a in p.artifacts] or list(p.alpha)
        parts.append(composition_section(membership, groups, list(dict.fromkeys(benchmarks)), dpi=dpi))
    if mixture.residual_moves:
        parts += [
            "<h2 id='residual'>Moved to residual (weight 0)</h2><p>Documents the residual rules moved out "
            "of the weighted groups, each counted under the first rule that moved it.</p>",
            table(
                ["rule", "documents", "tokens", "from domains (documents)"],
                [
                    [
                        esc(m.rule),
                        f"{m.documents:,}",
                        f"{m.tokens:,}",
                        esc(", ".join(f"{d} {c}" for d, c in m.by_domain.items()) or "-"),
                    ]
                    for m in mixture.residual_moves
                ],
            ),
        ]
    if samples is not None or samples_problem:
        parts.append(samples_section(samples or {}, groups, samples_problem))
    if mixture.notes:
        parts += ["<h2 id='notes'>Notes</h2>", notes_list(mixture.notes)]
    parts.append(region(VALIDATION, validation_section(validation, mixture.id)))
    parts += [
        "<h2 id='provenance'>Provenance</h2>",
        "<p>The artifact checkpoint of each benchmark and α, the share of the joint score that "
        "benchmark carries (proportional to the artifact checkpoint's training step).</p>",
        table(
            [
                "benchmark",
                "artifact checkpoint",
                "training step",
                "metric",
                "score",
                "α (share of joint score)",
            ],
            [
                [
                    esc(a.benchmark),
                    esc(a.checkpoint),
                    f"{a.step:,}",
                    esc(a.metric),
                    esc(score_text(a.score, a.metric)),
                    f"{p.alpha.get(a.benchmark, float('nan')):.3f}",
                ]
                for a in p.artifacts
            ],
        ),
        f"<p>Parameter blocks whose gradients the influence uses: <code>"
        f"{esc(p.layers if isinstance(p.layers, str) else ', '.join(p.layers))}</code>. Checkpoints "
        f"evaluated: {len(p.checkpoints)}.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
