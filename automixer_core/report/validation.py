"""The validation section: did target models trained on this mixture beat the baselines?

The report carries two replaceable regions (see :mod:`automixer_core.report.common`):
``validation`` (the section) and ``validation-status`` (one line at the top). A fresh report says
the mixture is not validated yet; :func:`with_validation` fills both from a validation document
(``validations/<id>/validation.json``, written by ``flows/validate.py``).
"""

from __future__ import annotations

import re
from typing import Any

from automixer_core.report.common import esc, img, region, replace_region, table
from automixer_core.report.files import link
from automixer_core.validation.report import curves_plot
from automixer_core.validation.stats import MEAN

VALIDATION = "validation"
STATUS = "validation-status"
_ACCURACY = ("acc", "acc_norm")


def _pp(value: float, metric: str, sign: bool = True) -> str:
    """A difference in the metric's unit (percentage points for accuracies, else nats/char),
    signed; ``sign=False``: a spread (a standard deviation), unsigned."""
    if value != value:
        return "–"
    if metric in _ACCURACY:
        return f"{100 * value:+.1f} pp" if sign else f"{100 * value:.1f} pp"
    return f"{value:+.3f} nats/char" if sign else f"{value:.3f} nats/char"


def _value(value: float, metric: str) -> str:
    """A score in the metric's unit: accuracies as percentages, else nats/char."""
    if value != value:
        return "–"
    return f"{100 * value:.1f}%" if metric in _ACCURACY else f"{value:.3f} nats/char"


def verdict(lo: float, hi: float) -> str:
    """``better`` / ``worse`` when the interval excludes 0, else ``not distinguishable``."""
    return "better" if lo > 0 else "worse" if hi < 0 else "not distinguishable"


def mixture_candidates(doc: dict[str, Any], mixture_id: str) -> list[str]:
    """The validation's candidates whose weights came from this mixture (source ``mixture <id>``,
    or ``mixture <id>, by group``)."""
    return [
        c["name"]
        for c in doc.get("candidates_info", [])
        if re.fullmatch(rf"mixture {re.escape(mixture_id)}(,.*)?", str(c.get("source", "")))
    ]


def _headline(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["summary"]
    return [d for d in s["differences"] if d["benchmark"] == MEAN and d["metric"] == s["headline_metric"]]


def status_line(doc: dict[str, Any] | None, mixture_id: str) -> str:
    """One sentence (HTML) for the top of the report: validated or not, and the headline result."""
    if doc is None:
        return (
            "<p><b>Not validated yet.</b> <code>automixer validate CONFIG --mixture "
            f"mixtures/{esc(mixture_id)}/mixture.json</code> trains target models on it and on "
            "baselines and adds the result here.</p>"
        )
    mine = set(mixture_candidates(doc, mixture_id))
    head = doc["summary"]["headline_metric"]
    bits = [
        f"{esc(d['candidate'])} − {esc(d['baseline'])}: {_pp(d['delta'], head)} "
        f"[{_pp(d['lo'], head)}, {_pp(d['hi'], head)}], {verdict(d['lo'], d['hi'])}"
        for d in _headline(doc)
        if d["candidate"] in mine
    ]
    result = "; ".join(bits) if bits else "no candidate of this mixture was compared"
    return (
        f"<p><b>Validated</b> (validation <code>{esc(doc['id'])}</code>, mean {esc(head)} over "
        f"benchmarks at the final checkpoint): {result}. <a href='#validation'>Details</a>.</p>"
    )


def validation_section(doc: dict[str, Any] | None, mixture_id: str) -> str:
    """The section's HTML (a short "not validated yet" when ``doc`` is None)."""
    if doc is None:
        return "<h2 id='validation'>Validation</h2><p>None yet.</p>"
    s = doc["summary"]
    head = s["headline_metric"]
    mine = set(mixture_candidates(doc, mixture_id))
    ci = float(doc.get("config", {}).get("ci", 0.9))
    parts = [
        "<h2 id='validation'>Validation</h2>",
        f"<p>Validation <code>{esc(doc['id'])}</code> ("
        + link(f"../../validations/{doc['id']}/report.html", "its full report")
        + f") trained the same target model ({esc(doc.get('target_summary', ''))}) on every candidate "
        f"for {int(doc.get('tokens_per_run', 0)):,} tokens with seeds {esc(', '.join(map(str, s['seeds'])))}. "
        f"Scores are the mean {esc(head)} over the benchmarks at the final checkpoint (mean over seeds "
        f"± their standard deviation); differences are paired over the same questions and seeds, with "
        f"{ci:.0%} bootstrap intervals. Candidates from this mixture are marked ★.</p>",
    ]
    baselines = sorted({d["baseline"] for d in s["differences"]})
    reach = s.get("tokens_to_reach", {})
    rows = []
    for c in s["candidates"]:
        final = s["final"][c][head][MEAN]
        cells = [
            esc(c) + (" ★" if c in mine else ""),
            f"{_value(final['value'], head)} ± {_pp(final['seed_std'], head, sign=False)}",
        ]
        for b in baselines:
            frac = reach.get(c, {}).get(b)
            cells.append("–" if c == b else "never" if frac is None else f"{100 * frac:.0f}%")
        rows.append(cells)
    parts.append(
        table(
            ["candidate", f"final mean {head}"]
            + [f"tokens to reach {b}'s final score (% of its tokens)" for b in baselines],
            rows,
        )
    )
    diffs = [
        [
            esc(f"{d['candidate']} − {d['baseline']}") + (" ★" if d["candidate"] in mine else ""),
            _pp(d["delta"], head),
            f"{_pp(d['lo'], head)} to {_pp(d['hi'], head)}",
            verdict(d["lo"], d["hi"]),
        ]
        for d in _headline(doc)
    ]
    if diffs:
        parts.append(
            table(["candidate − baseline", f"Δ mean {head}", f"{ci:.0%} interval", "verdict"], diffs)
        )
    parts.append(img(curves_plot(s["curves"], head), f"{head} learning curves"))
    return "\n".join(parts)


def empty_regions(mixture_id: str) -> tuple[str, str]:
    """The (status, section) regions of a report without a validation."""
    return region(STATUS, status_line(None, mixture_id)), region(
        VALIDATION, validation_section(None, mixture_id)
    )


def with_validation(page: str, doc: dict[str, Any], mixture_id: str) -> str:
    """``page`` (a mixture report) with its validation regions filled from ``doc``. A report
    written before the regions existed gets the section appended before ``</body>``."""
    status, section = status_line(doc, mixture_id), validation_section(doc, mixture_id)
    if f"<!-- {VALIDATION}:begin -->" not in page:
        block = region(VALIDATION, status + "\n" + section)
        i = page.rfind("</body>")
        return page[:i] + block + "\n" + page[i:] if i >= 0 else page + block
    page = replace_region(page, VALIDATION, section)
    if f"<!-- {STATUS}:begin -->" in page:
        page = replace_region(page, STATUS, status)
    return page
