"""Validation: does a mixture train a better model? (DESIGN §6)

Target proxies are trained on candidate mixtures (the published one, uniform over domains, natural
token shares, temperature-scaled shares, the paper's final-only and all-checkpoints ablations) with
equal token budgets and several seeds, evaluated per benchmark, and compared with each baseline,
paired over the same questions, with bootstrap intervals over questions and seeds.

- :mod:`.config`: :class:`ValidationConfig`, the ``validation:`` section of a run config.
- :mod:`.candidates`: sampling weights of each candidate from token counts or a mixture.
- :mod:`.metrics`: per-question metrics (acc, acc_norm, gold log-likelihood per character, margin).
- :mod:`.stats`: paired differences with a two-level bootstrap, and tokens-to-reach.
"""

from automixer_core.validation.candidates import (
    Candidate,
    natural_weights,
    temperature_weights,
    uniform_weights,
)
from automixer_core.validation.config import CANDIDATE_KINDS, ValidationConfig
from automixer_core.validation.metrics import METRICS, question_metrics
from automixer_core.validation.stats import MEAN, PairedDifference, paired_differences, tokens_to_reach

__all__ = [
    "CANDIDATE_KINDS",
    "MEAN",
    "METRICS",
    "Candidate",
    "PairedDifference",
    "ValidationConfig",
    "natural_weights",
    "paired_differences",
    "question_metrics",
    "temperature_weights",
    "tokens_to_reach",
    "uniform_weights",
]
