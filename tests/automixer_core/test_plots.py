"""The figures: one capability subplot per benchmark with its band, chance line, artifact star and
noise flag; weight bars whose legend names exactly what is drawn."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.patches import Rectangle
from PIL import Image

from automixer_core.mixture import MixtureGroup
from automixer_core.plots import (
    capability_emergence,
    capability_figure,
    chance_levels,
    noise_flags,
    weights_figure,
)
from automixer_core.selection import select_artifacts


def _evals() -> pd.DataFrame:
    """Three benchmarks over four checkpoints, standard error 0.02: arc_easy rises far above its
    chance (0.25); piqa's best (0.51) is within 1 s.e. of its chance (0.5); hellaswag's best (0.40)
    is within 1 s.e. of another checkpoint (0.39) but far above chance."""
    scores = {
        "arc_easy": [0.26, 0.30, 0.38, 0.45],
        "piqa": [0.49, 0.50, 0.505, 0.51],
        "hellaswag": [0.26, 0.30, 0.39, 0.40],
    }
    chance = {"arc_easy": 0.25, "piqa": 0.5, "hellaswag": 0.25}
    rows = [
        {
            "checkpoint": f"checkpoint-{s}",
            "step": s,
            "benchmark": b,
            "acc_norm": v[i],
            "acc_norm_stderr": 0.02,
            "chance": chance[b],
        }
        for b, v in scores.items()
        for i, s in enumerate([100, 200, 300, 400])
    ]
    return pd.DataFrame(rows)


def test_capability_panel_has_one_subplot_per_benchmark_with_band_chance_star_and_noise_flag() -> None:
    evals = _evals()
    chosen = select_artifacts(evals)
    fig = capability_figure(evals, chosen)
    try:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        titles = {ax.get_title(): ax for ax in axes}
        assert set(titles) == {"arc_easy", "hellaswag (within noise)", "piqa (within noise)"}
        for name, ax in titles.items():
            bench = name.split(" ")[0]
            # the ±1 s.e. band spans exactly score ± 0.02 at every step
            band = [c for c in ax.collections if isinstance(c, PolyCollection)]
            assert len(band) == 1
            ys = band[0].get_paths()[0].vertices[:, 1]
            want = evals.loc[evals["benchmark"] == bench, "acc_norm"]
            assert ys.max() == pytest.approx(want.max() + 0.02) and ys.min() == pytest.approx(
                want.min() - 0.02
            )
            # the dashed chance line sits at the benchmark's chance
            dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
            assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(chance_levels(evals)[bench])
            # the star marks the chosen checkpoint
            stars = [c for c in ax.collections if isinstance(c, PathCollection)]
            step = int(chosen.loc[chosen["benchmark"] == bench, "step"].iloc[0])
            assert len(stars) == 1 and stars[0].get_offsets()[0][0] == step
        assert [t.get_text() for t in fig.legends[0].get_texts()] == [
            "acc_norm",
            "± 1 standard error",
            "chance",
            "artifact checkpoint",
        ]
    finally:
        plt.close(fig)
    png = capability_emergence(evals, chosen)
    assert Image.open(io.BytesIO(png)).format == "PNG"


def test_noise_flags_say_why() -> None:
    evals = _evals()
    flags = noise_flags(evals, select_artifacts(evals), "acc_norm")
    assert flags["arc_easy"] == []
    assert flags["piqa"] == ["within 1 s.e. of chance", "within 1 s.e. of another checkpoint"]
    assert flags["hellaswag"] == ["within 1 s.e. of another checkpoint"]
    # without the selection's within_noise column the same test runs on the table itself
    bare = select_artifacts(evals).drop(columns=["within_noise"])
    assert noise_flags(evals, bare, "acc_norm") == flags
    # no stderr: nothing can be said to be within noise
    assert all(f == [] for f in noise_flags(evals.drop(columns="acc_norm_stderr"), bare, "acc_norm").values())
    # gold_ll has no chance level
    assert chance_levels(evals.drop(columns="chance")) == {}


def test_capability_panel_without_stderr_chance_or_checkpoint_columns() -> None:
    evals = pd.DataFrame(
        {"step": [100, 300, 100, 300], "benchmark": ["A", "A", "B", "B"], "acc_norm": [0.3, 0.4, 0.6, 0.5]}
    )
    fig = capability_figure(evals)
    try:
        assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
        assert all(not ax.collections for ax in fig.axes)  # no band, no star
        assert all(ln.get_linestyle() != "--" for ax in fig.axes for ln in ax.get_lines())  # no chance
    finally:
        plt.close(fig)


def _group(name: str, weight: float, tokens: int, floored: bool = False) -> MixtureGroup:
    return MixtureGroup(
        name=name,
        weight=weight,
        weight_ci=(max(weight - 0.05, 0.0), weight + 0.05),
        tokens=tokens,
        documents=10,
        density=0.0 if floored else 1.0,
        mean_doc_tokens=tokens / 10,
        floored=floored,
    )


def test_weight_bars_sorted_floored_visible_and_legend_matches_what_is_drawn() -> None:
    groups = [_group("small", 0.3, 100), _group("big", 0.7, 700), _group("residual", 0.0, 200, floored=True)]
    fig = weights_figure(groups, "t", ci_label="90% bootstrap interval")
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["big", "small", "residual"]  # by weight
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        weight_bars, share_bars = bars[:3], bars[3:]
        assert [b.get_width() for b in weight_bars] == pytest.approx([70, 30, 0])
        assert [b.get_width() for b in share_bars] == pytest.approx([70, 10, 20])  # tokens / 1000
        floored = weight_bars[2]
        assert floored.get_hatch() == "//" and floored.get_facecolor()[:3] == pytest.approx((0.7, 0.7, 0.7))
        assert weight_bars[0].get_hatch() in (None, "")
        texts = [t.get_text() for t in ax.texts]
        assert "0.0% floored" in texts  # a 0-width bar still shows
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == [
            "mixture weight",
            "weight set by the floor",
            "corpus token share",
            "90% bootstrap interval",
        ]
    finally:
        plt.close(fig)
    fig = weights_figure([_group("a", 0.5, 1), _group("b", 0.5, 1)], "t")
    try:
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert "weight set by the floor" not in legend  # nothing floored, nothing in the legend
        assert np.allclose([p.get_width() for p in fig.axes[0].patches][2:], [50, 50])
    finally:
        plt.close(fig)
