"""A self-contained HTML page of a validation: what each candidate trained to, the paired
differences to each baseline with their intervals, and the learning curves."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from automixer_core.validation.stats import MEAN

_UNITS = {
    "acc": "accuracy (fraction of questions)",
    "acc_norm": "accuracy, choices compared per character (fraction)",
    "gold_ll": "log-likelihood of the gold answer per character (nats/char; higher is better)",
    "margin": "gold minus best other choice, per character (nats/char; > 0 = correct)",
}


def curves_plot(curves: dict[str, list[dict[str, Any]]], metric: str) -> bytes:
    """The mean over benchmarks of ``metric`` against training tokens, one line per candidate; PNG."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, points in curves.items():
        ax.plot([p["tokens"] / 1e6 for p in points], [p[metric] for p in points], marker="o", label=name)
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel(f"mean {metric} over benchmarks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def render_validation(doc: dict[str, Any]) -> str:
    """The validation document (see :func:`summarize_validation`, plus ``id``, ``candidates_info``,
    ``config``) as one HTML page."""
    e = html.escape
    summary = doc["summary"]
    head = summary["headline_metric"]
    parts = [
        "<!doctype html><meta charset='utf-8'><title>AutoMixer validation</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}.pos{color:#060}"
        ".neg{color:#a00}</style>",
        f"<h1>Validation <code>{e(doc['id'])}</code></h1>",
        f"<p>Every candidate trained the same target proxy ({e(doc['target_summary'])}) for "
        f"{doc['tokens_per_run']:,} tokens, with seeds {summary['seeds']}; all candidates share the "
        "tokenizer, and seed <i>s</i> of every candidate shares the initialisation. Differences are "
        "paired over the same questions and seeds; intervals are "
        f"{int(doc['config']['ci'] * 100)}% bootstrap percentile intervals over questions and seeds.</p>",
        "<h2>Candidates</h2><table><tr><th>candidate</th><th>source</th><th>weights (token share per domain)</th></tr>",
    ]
    for c in doc["candidates_info"]:
        weights = ", ".join(f"{k} {v:.2f}" for k, v in sorted(c["weights"].items(), key=lambda kv: -kv[1]))
        parts.append(f"<tr><td>{e(c['name'])}</td><td>{e(c['source'])}</td><td>{e(weights)}</td></tr>")
    parts.append("</table>")
    parts.append(f"<h2>Final checkpoint: {e(head)} per benchmark (mean over seeds ± seed std)</h2>")
    benches = sorted(next(iter(summary["final"].values()))[head])
    parts.append("<table><tr><th>candidate</th>" + "".join(f"<th>{e(b)}</th>" for b in benches) + "</tr>")
    for c, by_metric in summary["final"].items():
        cells = "".join(
            f"<td>{by_metric[head][b]['value']:.3f} ± {_fmt(by_metric[head][b]['seed_std'])}</td>"
            for b in benches
        )
        parts.append(f"<tr><td>{e(c)}</td>{cells}</tr>")
    parts.append("</table>")
    for metric in summary["metrics"]:
        parts.append(f"<h2>Paired differences: {e(metric)}</h2><p>{e(_UNITS[metric])}</p>")
        parts.append(
            "<table><tr><th>candidate − baseline</th><th>benchmark</th><th>Δ</th><th>interval</th></tr>"
        )
        for d in summary["differences"]:
            if d["metric"] != metric or d["benchmark"] != MEAN:
                continue
            cls = "pos" if d["lo"] > 0 else "neg" if d["hi"] < 0 else ""
            parts.append(
                f"<tr><td>{e(d['candidate'])} − {e(d['baseline'])}</td><td>mean of {len(benches)}</td>"
                f"<td class='{cls}'>{d['delta']:+.4f}</td><td>[{d['lo']:+.4f}, {d['hi']:+.4f}]</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Per benchmark: " + e(head) + "</h2><table><tr><th>candidate − baseline</th>")
    parts.append("".join(f"<th>{e(b)}</th>" for b in benches) + "</tr>")
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for d in summary["differences"]:
        if d["metric"] == head:
            rows.setdefault((d["candidate"], d["baseline"]), {})[d["benchmark"]] = d
    for (c, base), by_bench in rows.items():
        cells = "".join(
            f"<td>{by_bench[b]['delta']:+.3f} [{by_bench[b]['lo']:+.3f}, {by_bench[b]['hi']:+.3f}]</td>"
            for b in benches
        )
        parts.append(f"<tr><td>{e(c)} − {e(base)}</td>{cells}</tr>")
    parts.append("</table>")
    parts.append(
        f"<h2>Tokens to reach a baseline's final {e(head)}</h2><p>The fraction of the baseline's "
        "training tokens a candidate needs to reach the baseline's final score (mean over benchmarks "
        "and seeds, linear between checkpoints; – = never within the budget).</p><table>"
        "<tr><th>candidate</th><th>baseline</th><th>fraction of tokens</th></tr>"
    )
    for c, by_base in summary["tokens_to_reach"].items():
        for base, frac in by_base.items():
            parts.append(f"<tr><td>{e(c)}</td><td>{e(base)}</td><td>{_fmt(frac, 2)}</td></tr>")
    parts.append("</table>")
    for metric in (head, "gold_ll"):
        png = base64.b64encode(curves_plot(summary["curves"], metric)).decode()
        parts.append(
            f"<h2>Learning curves: {e(metric)}</h2><img alt='{e(metric)} curves' src='data:image/png;base64,{png}'>"
        )
    return "\n".join(parts) + "\n"
