"""Figures (matplotlib, headless Agg backend): PNG bytes out, nothing written here."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def capability_emergence(
    evals: pd.DataFrame, selection: pd.DataFrame | None = None, metric: str = "acc_norm"
) -> bytes:
    """Accuracy against training step for each benchmark, the chosen checkpoint marked.

    Args:
        evals: one row per (checkpoint, benchmark): ``step``, ``benchmark``, ``metric``.
        selection: the artifact table (``benchmark``, ``step``) from ``select_artifacts``.
        metric: the column to plot.

    Returns:
        PNG bytes.
    """
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for i, (bench, g) in enumerate(evals.sort_values("step").groupby("benchmark", sort=True)):
        color = f"C{i % 10}"
        ax.plot(g["step"], g[metric], marker="o", ms=3, lw=1.5, color=color, label=str(bench))
        if selection is not None:
            chosen = selection[selection["benchmark"] == bench]
            for step in chosen["step"]:
                y = g.loc[g["step"] == step, metric]
                if len(y):
                    ax.scatter(
                        [step],
                        [float(y.iloc[0])],
                        s=120,
                        marker="*",
                        color=color,
                        edgecolor="black",
                        zorder=5,
                    )
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    ax.set_title("Capability emergence (★ = artifact checkpoint)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
