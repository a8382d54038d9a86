"""Figures (matplotlib, headless Agg backend): PNG bytes out, nothing written here.

Every function takes a ``dpi``: the HTML report uses :data:`REPORT_DPI`, the Prefect artifacts
(markdown with data-URI images, which must stay small) :data:`ARTIFACT_DPI`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Protocol

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from automixer_core.selection import _within_noise

REPORT_DPI = 90
ARTIFACT_DPI = 70

#: What each evaluation metric measures, for axis labels.
METRIC_UNITS = {
    "acc": "acc (fraction correct)",
    "acc_norm": "acc_norm (fraction correct)",
    "gold_ll": "gold log-likelihood (nats/char)",
}
#: Metrics for which a chance level exists (a fraction of questions answered right).
CHANCE_METRICS = ("acc", "acc_norm")

_WEIGHT_COLOR = "C0"
_SHARE_COLOR = "#f2b36b"
_FLOOR_COLOR = "0.7"


def png(fig: Figure, dpi: int) -> bytes:
    """The figure as PNG bytes (tight layout), and close it."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


# --- capability --------------------------------------------------------------------------------


def chance_levels(evals: pd.DataFrame) -> dict[str, float]:
    """benchmark → chance accuracy, from the table's ``chance`` column (the mean over questions of
    1 / number of choices, which ``tasks.reports.evaluation_table`` computes from the per-question
    table); benchmarks without a finite value are left out (a table without the column: ``{}``)."""
    if "chance" not in evals.columns:
        return {}
    out: dict[str, float] = {}
    for bench, g in evals.groupby("benchmark", sort=True):
        values = pd.to_numeric(g["chance"], errors="coerce").dropna()
        if len(values):
            out[str(bench)] = float(values.mean())
    return out


def noise_flags(evals: pd.DataFrame, selection: pd.DataFrame | None, metric: str) -> dict[str, list[str]]:
    """benchmark → why its artifact choice is at noise level ([] when it is not).

    Two reasons, each needing a finite ``<metric>_stderr`` of the chosen checkpoint: its score is
    within one standard error of chance (``acc``/``acc_norm`` with a ``chance`` column), or of
    another checkpoint's score (the selection's ``within_noise`` column where present, else the
    same test as :func:`automixer_core.selection.select_artifacts`).
    """
    out: dict[str, list[str]] = {str(b): [] for b in evals["benchmark"].unique()}
    if selection is None or selection.empty:
        return out
    se_col = f"{metric}_stderr"
    chance = chance_levels(evals) if metric in CHANCE_METRICS else {}
    table = evals if "checkpoint" in evals.columns else evals.assign(checkpoint=evals["step"].astype(str))
    for _, choice in selection.iterrows():
        bench = str(choice["benchmark"])
        rows = table[(table["benchmark"] == choice["benchmark"]) & (table["step"] == choice["step"])]
        if rows.empty:
            continue
        row = rows.iloc[0]
        flags = out.setdefault(bench, [])
        se = float(row[se_col]) if se_col in table.columns else math.nan
        score = float(row[metric])
        if bench in chance and math.isfinite(se) and abs(score - chance[bench]) <= se:
            flags.append("within 1 s.e. of chance")
        if "within_noise" in selection.columns:
            near = bool(choice["within_noise"])
        else:
            near = _within_noise(table[table["benchmark"] == choice["benchmark"]], metric, row) > 0
        if near:
            flags.append("within 1 s.e. of another checkpoint")
    return {b: list(dict.fromkeys(f)) for b, f in out.items()}


def capability_emergence(
    evals: pd.DataFrame,
    selection: pd.DataFrame | None = None,
    metric: str = "acc_norm",
    *,
    dpi: int = REPORT_DPI,
) -> bytes:
    """The figure of :func:`capability_figure` as PNG bytes (``dpi``: resolution)."""
    fig = capability_figure(evals, selection, metric)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def capability_figure(
    evals: pd.DataFrame, selection: pd.DataFrame | None = None, metric: str = "acc_norm"
) -> Figure:
    """One small subplot per benchmark: ``metric`` against training step, a ±1 standard-error band
    (where the table has ``<metric>_stderr``), a dashed chance line (``acc``/``acc_norm`` where the
    table has ``chance``, see :func:`chance_levels`; no line otherwise), and ★ at the artifact
    checkpoint(s). A subplot title ends with "(within noise)" when :func:`noise_flags` flags it.

    Args:
        evals: one row per (checkpoint, benchmark): ``step``, ``benchmark``, ``metric`` and
            optionally ``<metric>_stderr``, ``chance``, ``checkpoint``.
        selection: the artifact table (``benchmark``, ``step``, optionally ``within_noise``)
            from ``select_artifacts``.
        metric: the column to plot.

    Returns:
        The figure (about 2.6 × 2.1 inches per subplot, 4 per row; the caller closes it).
    """
    benches = sorted(str(b) for b in evals["benchmark"].unique())
    ncols = max(1, min(4, len(benches)))
    nrows = max(1, math.ceil(len(benches) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.6 * ncols, 2.1 * nrows + 0.5), squeeze=False, sharex=True
    )
    se_col = f"{metric}_stderr"
    chance = chance_levels(evals) if metric in CHANCE_METRICS else {}
    flags = noise_flags(evals, selection, metric)
    drawn: dict[str, Artist] = {}
    for i, bench in enumerate(benches):
        ax = axes[i // ncols][i % ncols]
        g = evals[evals["benchmark"] == bench].sort_values("step")
        x = g["step"].to_numpy(dtype=float)
        y = pd.to_numeric(g[metric], errors="coerce").to_numpy(dtype=float)
        (line,) = ax.plot(x, y, marker="o", ms=3, lw=1.3, color="C0")
        drawn.setdefault(metric, line)
        if se_col in g.columns:
            se = pd.to_numeric(g[se_col], errors="coerce").to_numpy(dtype=float)
            if np.isfinite(se).any():
                band = ax.fill_between(x, y - se, y + se, color="C0", alpha=0.2, lw=0)
                drawn.setdefault("± 1 standard error", band)
        if bench in chance:
            ch = ax.axhline(chance[bench], color="0.3", ls="--", lw=1)
            drawn.setdefault("chance", ch)
        if selection is not None:
            for step in selection.loc[selection["benchmark"] == bench, "step"]:
                at = g["step"] == step
                if at.any():
                    star = ax.scatter(
                        [float(step)],
                        [float(pd.to_numeric(g.loc[at, metric]).iloc[0])],
                        s=110,
                        marker="*",
                        color="gold",
                        edgecolor="black",
                        zorder=5,
                    )
                    drawn.setdefault("artifact checkpoint", star)
        title = bench + (" (within noise)" if flags.get(bench) else "")
        ax.set_title(title, fontsize=9, color="#a00" if flags.get(bench) else "black")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i % ncols == 0:
            ax.set_ylabel(METRIC_UNITS.get(metric, metric), fontsize=7)
        if i // ncols == nrows - 1 or i + ncols >= len(benches):
            ax.set_xlabel("training step", fontsize=7)
            ax.tick_params(labelbottom=True)
    for j in range(len(benches), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    if drawn:
        fig.legend(
            list(drawn.values()),
            list(drawn.keys()),
            loc="lower center",
            ncol=len(drawn),
            fontsize=7,
            frameon=False,
        )
    fig.tight_layout(rect=(0, 0.07 if drawn else 0, 1, 1))
    return fig


# --- weights -----------------------------------------------------------------------------------


class WeightedEntry(Protocol):
    """What :func:`weights_plot` reads of a mixture group or domain."""

    name: str
    weight: float
    weight_ci: tuple[float, float] | None
    tokens: int
    floored: bool


def weights_plot(
    entries: Sequence[WeightedEntry], title: str, *, ci_label: str = "interval", dpi: int = REPORT_DPI
) -> bytes:
    """The figure of :func:`weights_figure` as PNG bytes (``dpi``: resolution)."""
    return png(weights_figure(entries, title, ci_label=ci_label), dpi)


def weights_figure(entries: Sequence[WeightedEntry], title: str, *, ci_label: str = "interval") -> Figure:
    """Paired horizontal bars, sorted by weight (largest on top): the mixture weight (blue; grey and
    hatched where the floor set it, labelled "floored" so a 0 weight shows) with its bootstrap
    interval, next to the corpus token share T_g / Σ T (orange) of the scored documents.

    Args:
        entries: mixture groups or domains (``name, weight, weight_ci, tokens, floored``).
        title: the figure's title.
        ci_label: the legend's words for the interval (e.g. "90% bootstrap interval").

    Returns:
        The figure (the caller closes it).
    """
    order = sorted(entries, key=lambda e: (-e.weight, e.name))
    total = sum(e.tokens for e in order)
    share = np.array([e.tokens / total if total else 0.0 for e in order]) * 100
    w = np.array([e.weight for e in order]) * 100
    y = np.arange(len(order))
    h = 0.38
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(order) + 1.8))
    colors = [_FLOOR_COLOR if e.floored else _WEIGHT_COLOR for e in order]
    hatches = ["//" if e.floored else "" for e in order]
    bars = ax.barh(y - h / 2, w, height=h, color=colors, edgecolor="0.35", linewidth=0.4)
    for bar, hatch in zip(bars, hatches, strict=True):
        bar.set_hatch(hatch)
    ax.barh(y + h / 2, share, height=h, color=_SHARE_COLOR, edgecolor="0.35", linewidth=0.4)
    handles: list[Artist] = [Patch(color=_WEIGHT_COLOR)]
    labels = ["mixture weight"]
    if any(e.floored for e in order):
        handles.append(Patch(facecolor=_FLOOR_COLOR, hatch="//", edgecolor="0.35"))
        labels.append("weight set by the floor")
    handles.append(Patch(color=_SHARE_COLOR))
    labels.append("corpus token share")
    cis = [e.weight_ci for e in order]
    if any(c is not None for c in cis):
        lo = np.array([w[i] - 100 * c[0] if c is not None else 0.0 for i, c in enumerate(cis)])
        hi = np.array([100 * c[1] - w[i] if c is not None else 0.0 for i, c in enumerate(cis)])
        ax.errorbar(
            w,
            y - h / 2,
            xerr=np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)]),
            fmt="none",
            ecolor="k",
            elinewidth=0.8,
            capsize=2,
        )
        handles.append(Line2D([], [], color="k", lw=0.8, marker="|", markersize=6))
        labels.append(ci_label)
    ci_hi = max((100 * c[1] for c in cis if c is not None), default=0.0)
    xmax = max(float(w.max(initial=0)), float(share.max(initial=0)), ci_hi, 1.0)
    for i, e in enumerate(order):
        label = f"{w[i]:.1f}%" + (" floored" if e.floored else "")
        right = max(w[i], 100 * cis[i][1]) if cis[i] is not None else w[i]  # type: ignore[index]
        ax.text(right + 0.012 * xmax, y[i] - h / 2, label, va="center", fontsize=7)
    ax.set_yticks(y, [e.name for e in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax * 1.22)
    ax.set_xlabel("% of tokens (weight: of the next run's training tokens; share: of the scored corpus)")
    ax.xaxis.label.set_fontsize(8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False
    )
    fig.tight_layout()
    return fig


# --- where the groups come from ----------------------------------------------------------------


def heatmap_plot(
    values: pd.DataFrame,
    *,
    title: str,
    colorbar_label: str,
    annotations: pd.DataFrame | None = None,
    diverging: bool = False,
    dpi: int = REPORT_DPI,
) -> bytes:
    """A heatmap of ``values`` (rows × columns as in the frame) with each cell annotated.

    Args:
        values: the colours (NaN cells blank); rows and columns are labelled by the frame's index
            and columns.
        title: the figure's title.
        colorbar_label: what the colour means, with its unit.
        annotations: the text of each cell (same shape); default the values to 2 significant digits.
        diverging: a red-blue scale centred on 0 (for signed values) instead of a sequential one.
        dpi: resolution.

    Returns:
        PNG bytes.
    """
    mat = values.to_numpy(dtype=float)
    nrows, ncols = mat.shape
    fig, ax = plt.subplots(figsize=(min(11.0, 1.0 * ncols + 3.0), min(9.0, 0.45 * nrows + 1.8)))
    if diverging:
        finite = np.abs(mat[np.isfinite(mat)])
        vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        im = ax.imshow(mat, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
    else:
        im = ax.imshow(mat, cmap="Blues", vmin=0, aspect="auto")
    text = annotations if annotations is not None else values.map(lambda v: f"{v:.2g}")
    norm_max = float(np.nanmax(np.abs(mat))) if np.isfinite(mat).any() else 1.0
    for r in range(nrows):
        for c in range(ncols):
            v = mat[r, c]
            if not np.isfinite(v):
                continue
            dark = abs(v) > 0.6 * norm_max
            ax.text(
                c, r, str(text.iat[r, c]), ha="center", va="center", fontsize=7, color="w" if dark else "k"
            )
    ax.set_xticks(np.arange(ncols), [str(c) for c in values.columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(np.arange(nrows), [str(i) for i in values.index], fontsize=8)
    ax.set_xlabel(str(values.columns.name or ""), fontsize=8)
    ax.set_ylabel(str(values.index.name or ""), fontsize=8)
    ax.set_title(title, fontsize=10)
    cbar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label(colorbar_label, fontsize=7)
    cbar.ax.tick_params(labelsize=7)
    return png(fig, dpi)


# --- scores ------------------------------------------------------------------------------------


def score_distributions_plot(
    membership: pd.DataFrame, groups: Sequence[str] | None = None, *, dpi: int = REPORT_DPI
) -> bytes:
    """Box plots (5th-95th percentile whiskers) of the joint score I_joint per group; PNG bytes.

    Args:
        membership: one row per document: ``group, joint_score``.
        groups: the groups in display order (default: sorted names).
        dpi: resolution.
    """
    names = list(groups) if groups is not None else sorted(str(g) for g in membership["group"].unique())
    data = [membership.loc[membership["group"] == n, "joint_score"].to_numpy(dtype=float) for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(names) + 1.4))
    ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False, tick_labels=names)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.invert_yaxis()
    ax.tick_params(labelsize=8)
    ax.set_xlabel("joint influence per token I_joint (arbitrary units)", fontsize=8)
    ax.set_title("Joint score per document, by group (box: quartiles; whiskers: 5th-95th pct)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return png(fig, dpi)


def density_length_plot(
    membership: pd.DataFrame, *, max_points: int = 4000, seed: int = 0, dpi: int = REPORT_DPI
) -> bytes:
    """Each document's joint score (influence per token) against its length, coloured by group,
    with the token-weighted mean per length bin (the density of the documents of that length).

    Args:
        membership: one row per document: ``group, joint_score, n_tokens``.
        max_points: documents drawn at most (a seeded random sample beyond; the binned means use
            every document).
        seed: the sample's seed.
        dpi: resolution.

    Returns:
        PNG bytes.
    """
    mem = membership[membership["n_tokens"] > 0]
    n = mem["n_tokens"].to_numpy(dtype=float)
    s = mem["joint_score"].to_numpy(dtype=float)
    shown = mem if len(mem) <= max_points else mem.sample(max_points, random_state=seed)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (name, g) in enumerate(shown.groupby("group", sort=True)):
        ax.scatter(g["n_tokens"], g["joint_score"], s=6, alpha=0.5, color=f"C{i % 10}", label=str(name), lw=0)
    log = len(n) > 0 and n.max() / max(n.min(), 1.0) > 20
    if len(n) > 1:
        edges = (
            np.geomspace(n.min(), n.max() * 1.0001, 13) if log else np.linspace(n.min(), n.max() * 1.0001, 13)
        )
        idx = np.clip(np.digitize(n, edges) - 1, 0, len(edges) - 2)
        tok = np.bincount(idx, weights=n, minlength=len(edges) - 1)
        num = np.bincount(idx, weights=s * n, minlength=len(edges) - 1)
        ok = tok > 0
        mids = np.sqrt(edges[:-1] * edges[1:]) if log else (edges[:-1] + edges[1:]) / 2
        ax.plot(mids[ok], num[ok] / tok[ok], color="k", lw=1.5, marker="s", ms=3, label="density per bin")
    ax.axhline(0.0, color="0.4", lw=0.8)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("document length (tokens" + (", log scale)" if log else ")"), fontsize=8)
    ax.set_ylabel("joint influence per token (arbitrary units)", fontsize=8)
    sampled = f" ({max_points:,} of {len(mem):,} documents shown)" if len(mem) > max_points else ""
    ax.set_title("Joint score against document length" + sampled, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, markerscale=2, ncol=2, loc="best")
    return png(fig, dpi)


def share_table(membership: pd.DataFrame, rows: str, columns: str) -> pd.DataFrame:
    """rows × columns: the share (0-1) of each row's tokens (``n_tokens``) in each column value,
    e.g. ``share_table(membership, "group", "domain")``: where each group's tokens come from."""
    counts = membership.pivot_table(
        index=rows, columns=columns, values="n_tokens", aggfunc="sum", fill_value=0
    )
    totals = counts.sum(axis=1).replace(0, np.nan)
    return counts.div(totals, axis=0).fillna(0.0)


def mean_scores_table(
    membership: pd.DataFrame, benchmarks: Sequence[str], prefix: str = "score__"
) -> pd.DataFrame:
    """benchmark × group: the mean over the group's documents of the benchmark's score column
    (``<prefix><benchmark>``; arbitrary units); benchmarks without a column are left out."""
    cols = {b: f"{prefix}{b}" for b in benchmarks if f"{prefix}{b}" in membership.columns}
    means = membership.groupby("group", sort=True)[list(cols.values())].mean()
    out = means.T.rename(index={v: k for k, v in cols.items()})
    out.index.name = "benchmark"
    out.columns.name = "group"
    return out


def row_scaled(values: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its largest |value| (rows of 0 stay 0): comparable colours for rows
    on different scales."""
    scale = values.abs().max(axis=1).replace(0, np.nan)
    return values.div(scale, axis=0).fillna(0.0)


def label_share(value: float) -> str:
    """A share 0-1 as a short percentage for a heatmap cell ("" below 0.05%)."""
    return "" if value < 0.0005 else f"{100 * value:.0f}%" if value >= 0.095 else f"{100 * value:.1f}%"
