from __future__ import annotations

import io

import pandas as pd
from PIL import Image

from automixer_core.plots import capability_emergence
from automixer_core.selection import select_artifacts


def test_capability_plot_is_a_png_of_the_expected_size() -> None:
    evals = pd.DataFrame(
        [
            (f"c{s}", s, b, 0.2 + 0.001 * s * (i + 1))
            for s in (100, 200, 300)
            for i, b in enumerate(["arc_easy", "piqa"])
        ],
        columns=["checkpoint", "step", "benchmark", "acc_norm"],
    )
    png = capability_emergence(evals, select_artifacts(evals))
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    assert img.size == (880, 550)
