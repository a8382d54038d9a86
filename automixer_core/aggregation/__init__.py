"""Joint influence, task-aligned groups and their sampling weights (DESIGN §1 steps 4-6).

Input: a *scores table*, one row per source document, with columns

- ``doc_id`` (unique), ``n_tokens`` (n_x ≥ 0), optionally ``domain`` (a corpus label);
- one float column per benchmark b holding I_b(x), already oriented (positive = a training step on
  x lowers b's loss). The column is named ``b`` (or ``score__b``, the name the influence engine
  writes). With ``top_k``/``all`` selection a benchmark has several artifact checkpoints: average
  their score columns into one column per benchmark first, and pass the mean of their steps.

plus ``steps``: the artifact step s_(b) of every benchmark (a number, or a list whose mean is used).

The rules, with the choices that are ours (DESIGN §1 marks them so):

- Step 4, joint influence: I_joint(x) = Σ_b α_b I_b(x) with α_b = s_(b) / Σ_b' s_(b') (``alpha:
  step``, the paper) or α_b = 1/B (``uniform``). If every step is 0, α falls back to uniform.
- Step 5, groups: g(x) = argmax_b Ĩ_b(x) (ties go to the benchmark listed first), where Ĩ_b is
  I_b scaled per benchmark by ``normalize`` (none: Ĩ = I; zscore; rank). With ``residual: true``
  a harmful document goes to the group ``residual`` instead: by ``residual_rule:
  negative_joint`` (default) one with I_joint(x) < ``residual_threshold`` (0) or negative for
  every benchmark; by ``all_negative`` only one negative (< 0) for every b. With
  ``residual_domains: relative`` (default) every document of a labelled domain whose joint density
  ρ_d (step 6 over all its documents) is below −``residual_scale`` (0.5) × the median |ρ_d'| of
  the domains goes there too, its documents' own scores notwithstanding: clearly harmful on the
  corpus's own scale, where a domain near 0 (a skill the checkpoint already knows) stays.
  ``confident``: ρ_d's ``residual_level`` bootstrap quantile is below ``residual_threshold``;
  ``negative``: ρ_d is; ``off``: never. Each document moved is counted under the first
  rule that moves it, in the order all_negative, negative_joint, negative_domain
  (``Aggregation.residual_moves``). Benchmarks that win no document have no group (a note says so).
- Step 6, density: ρ_g = (1/T_g) Σ_{x∈g} I_joint(x)·n_x with T_g = Σ_{x∈g} n_x (ρ_g = 0 when
  T_g = 0).
- Step 6, weights with the floor m = ``min_weight`` (``floor_weights``): let ρ⁺ = max(ρ, 0).
  Groups with ρ_g ≤ 0 are *floored*: they get exactly m. The others share 1 − m·|floored| in
  proportion to ρ⁺; any of them whose share falls below m is floored too, and the split repeats
  until no share is below m. So every weight is ≥ m, they sum to 1, and with m = 0 this is
  w_g = ρ⁺_g / Σρ⁺. If every ρ ≤ 0 there is no signal: the weights fall back to token shares
  T_g / T (then floored the same way) and a note says so. G·m must be ≤ 1.
- Per-domain weights (where the table has ``domain``): the same density and floor rule with the
  domain labels as groups.
- Bootstrap intervals: resample documents with replacement (resample r draws
  ``rng.integers(0, N, N)`` from ``numpy.random.default_rng(seed)``, in order r = 0, 1, ...),
  recompute every density and weight with each document's group fixed, and take the
  ``(1 − ci)/2`` and ``(1 + ci)/2`` percentiles (numpy's default linear quantile). A group that
  draws no document in a resample has ρ = 0 there (so it is floored in that resample).
- ``driven_by``: the density splits exactly into per-benchmark parts,
  ρ_g = Σ_b C_gb with C_gb = (1/T_g) Σ_{x∈g} α_b I_b(x)·n_x. Each benchmark's ``share`` is
  |C_gb| / Σ_b' |C_gb'| (non-negative, sums to 1; all 0 when every C_gb is 0) and
  ``contribution`` is the signed C_gb; sorted by share, largest first.

Modules, one per section:

- :mod:`.config`: :class:`AggregationConfig`, the :class:`Aggregation` result, and the constants
  (``RESIDUAL``, the ``score__`` prefix, the unlabelled-domain label).
- :mod:`.alpha`: step 4, α from the artifact steps (:func:`alpha_weights`).
- :mod:`.weights`: step 6, densities, the floor rule (:func:`floor_weights`) and the bootstrap
  intervals.
- :mod:`.residual`: step 5's residual rules (the domain rule, the record and note of each move).
- :mod:`.entry`: the scores-table checks, :func:`normalized_scores`, the entry point
  :func:`aggregate` and :func:`artifact_steps`.
"""

from automixer_core.aggregation.alpha import alpha_weights
from automixer_core.aggregation.config import (
    RESIDUAL,
    SCORE_PREFIX,
    UNLABELLED,
    Aggregation,
    AggregationConfig,
    StepValue,
)
from automixer_core.aggregation.entry import aggregate, artifact_steps, normalized_scores
from automixer_core.aggregation.weights import floor_weights

__all__ = [
    "RESIDUAL",
    "SCORE_PREFIX",
    "UNLABELLED",
    "Aggregation",
    "AggregationConfig",
    "StepValue",
    "aggregate",
    "alpha_weights",
    "artifact_steps",
    "floor_weights",
    "normalized_scores",
]
