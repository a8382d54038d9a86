"""A self-contained HTML report of a mixture (DESIGN §1 step 7): tables and base64-embedded PNGs."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from automixer_core.aggregation import Aggregation
from automixer_core.mixture import Mixture, MixtureDomain, MixtureGroup


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def weights_plot(entries: list[MixtureGroup] | list[MixtureDomain], title: str) -> bytes:
    """Horizontal bars of the weights with their bootstrap intervals (where known); PNG bytes."""
    names = [e.name for e in entries]
    w = np.array([e.weight for e in entries])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4), dpi=110)
    y = np.arange(len(names))
    colors = ["0.6" if e.floored else "C0" for e in entries]
    ax.barh(y, w, color=colors)
    cis = [e.weight_ci for e in entries]
    if any(c is not None for c in cis):
        lo = np.array([w[i] - c[0] if c is not None else 0.0 for i, c in enumerate(cis)])
        hi = np.array([c[1] - w[i] if c is not None else 0.0 for i, c in enumerate(cis)])
        ax.errorbar(w, y, xerr=np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)]), fmt="none", ecolor="k")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("weight (token share); grey = floored")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def score_distributions_plot(aggregation: Aggregation) -> bytes:
    """Box plots (5th-95th percentile whiskers) of the joint score I_joint per group; PNG bytes."""
    names = [str(n) for n in aggregation.groups["name"]]
    mem = aggregation.membership
    data = [mem.loc[mem["group"] == n, "joint_score"].to_numpy() for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.4), dpi=110)
    ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False, tick_labels=names)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("joint influence I_joint(x)")
    ax.set_title("Score distribution per group")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _ci(c: tuple[float, float] | None) -> str:
    return "" if c is None else f"{100 * c[0]:.1f}–{100 * c[1]:.1f}%"


def _rows(entries: list[MixtureGroup] | list[MixtureDomain], drivers: bool) -> str:
    out = []
    for e in entries:
        cells = [
            html.escape(e.name),
            f"{100 * e.weight:.2f}%",
            _ci(e.weight_ci),
            f"{e.tokens:,}",
            f"{e.documents:,}",
            f"{e.mean_doc_tokens:,.1f}",
            f"{e.density:.4g}",
            "yes" if e.floored else "",
        ]
        if drivers and isinstance(e, MixtureGroup):
            top = [
                f"{html.escape(d.benchmark)} ({100 * d.share:.0f}%)" for d in e.driven_by[:3] if d.share > 0
            ]
            cells.append(", ".join(top))
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "\n".join(out)


_HEAD = ["name", "weight", "interval", "tokens", "documents", "tokens/doc", "density ρ", "floored"]
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child,td:last-child{text-align:left}th{background:#f3f3f3}
code{background:#f3f3f3;padding:1px 4px}img{max-width:100%;display:block;margin:1em 0}
"""


def render_report(
    mixture: Mixture, aggregation: Aggregation | None = None, capability_png: bytes | None = None
) -> str:
    """The report as one HTML string (no external files: plots are base64 PNGs).

    Args:
        mixture: the published mixture.
        aggregation: its aggregation (adds the score-distribution plot); optional.
        capability_png: a capability-emergence figure (``plots.capability_emergence``); optional.
    """
    p = mixture.provenance
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>AutoMixer mixture {html.escape(mixture.id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>AutoMixer mixture <code>{html.escape(mixture.id)}</code></h1>",
        f"<p>Created {html.escape(p.created_at.isoformat())} · code {html.escape(p.code_version)} · "
        f"estimator <code>{html.escape(p.estimator)}</code> · config <code>{html.escape(p.config_hash)}</code></p>",
        "<h2>Group weights</h2>",
        "<p>Weights are token shares (DESIGN §1 step 6: w_g ∝ ρ_g, negative densities floored); "
        "intervals are bootstrap percentile intervals over documents.</p>",
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in [*_HEAD, "driven by"]) + "</tr>",
        _rows(mixture.groups, drivers=True),
        "</table>",
        _img(weights_plot(mixture.groups, "Group weights"), "group weights"),
    ]
    if aggregation is not None:
        parts += ["<h2>Joint scores</h2>", _img(score_distributions_plot(aggregation), "score distributions")]
    if mixture.domains:
        parts += [
            "<h2>Per-domain weights</h2><p>The same density rule with the corpus's domain labels as groups.</p>",
            "<table><tr>" + "".join(f"<th>{h}</th>" for h in _HEAD) + "</tr>",
            _rows(mixture.domains, drivers=False),
            "</table>",
            _img(weights_plot(mixture.domains, "Per-domain weights"), "domain weights"),
        ]
    if capability_png:
        parts += ["<h2>Capability emergence</h2>", _img(capability_png, "capability emergence")]
    if mixture.residual_moves:
        parts += [
            "<h2>Moved to residual (weight 0)</h2><p>Each document under the first rule that moved it.</p>",
            "<table><tr><th>rule</th><th>documents</th><th>tokens</th><th>from domains</th></tr>",
            *[
                f"<tr><td>{html.escape(m.rule)}</td><td>{m.documents:,}</td><td>{m.tokens:,}</td><td>"
                + html.escape(", ".join(f"{d} {c}" for d, c in m.by_domain.items()) or "-")
                + "</td></tr>"
                for m in mixture.residual_moves
            ],
            "</table>",
        ]
    if mixture.notes:
        parts += ["<h2>Notes</h2><ul>", *[f"<li>{html.escape(n)}</li>" for n in mixture.notes], "</ul>"]
    parts += ["<h2>Provenance</h2>", "<table><tr><th>benchmark</th><th>checkpoint</th><th>step</th>"]
    parts[-1] += "<th>metric</th><th>score</th><th>α</th></tr>"
    for a in p.artifacts:
        parts.append(
            f"<tr><td>{html.escape(a.benchmark)}</td><td>{html.escape(a.checkpoint)}</td><td>{a.step}</td>"
            f"<td>{html.escape(a.metric)}</td><td>{a.score:.4f}</td>"
            f"<td>{p.alpha.get(a.benchmark, float('nan')):.3f}</td></tr>"
        )
    layers = p.layers if isinstance(p.layers, str) else ", ".join(p.layers)
    parts += [
        "</table>",
        f"<p>Parameter blocks: <code>{html.escape(layers)}</code>. "
        f"Checkpoints evaluated: {len(p.checkpoints)}.</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
