"""Step 4: α_b, the weight of each benchmark in the joint influence, from the artifact steps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np

from automixer_core.aggregation.config import StepValue
from automixer_core.errors import ConfigError


def _mean_step(bench: str, value: StepValue) -> float:
    if isinstance(value, int | float | np.integer | np.floating):
        vals = [float(value)]
    else:
        vals = [float(v) for v in value]
    if not vals or any(not np.isfinite(v) or v < 0 for v in vals):
        raise ConfigError(
            f"Artifact step(s) {value!r} of benchmark {bench!r} are not finite non-negative numbers",
            expected="the training step of the benchmark's artifact checkpoint (or a list of them)",
            fix="pass steps from the selection table (benchmark → step)",
        )
    return float(np.mean(vals))


def alpha_weights(
    steps: Mapping[str, float], mode: Literal["step", "uniform"] = "step"
) -> tuple[dict[str, float], list[str]]:
    """α_b of DESIGN §1 step 4, normalised to sum 1, and notes.

    ``step``: α_b = s_(b) / Σ s (paper); falls back to uniform when every step is 0.
    ``uniform``: α_b = 1/B.
    """
    names = list(steps)
    if not names:
        raise ConfigError("No benchmarks given", fix="pass at least one benchmark with its artifact step")
    notes: list[str] = []
    s = np.array([float(steps[b]) for b in names], dtype=np.float64)
    if mode == "step" and s.sum() > 0:
        a = s / s.sum()
        zero = [b for b, v in zip(names, s, strict=True) if v == 0]
        if zero:
            notes.append(f"alpha: benchmark(s) {zero} have artifact step 0, so α = 0 (no joint influence)")
    else:
        if mode == "step":
            notes.append("alpha: every artifact step is 0; fell back to uniform α")
        a = np.full(len(names), 1.0 / len(names))
    return {b: float(v) for b, v in zip(names, a, strict=True)}, notes
