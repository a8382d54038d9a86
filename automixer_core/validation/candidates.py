"""Sampling weights of the validation candidates: token shares per domain, or, when validation
samples by groups, per group of a published mixture's membership (its scored documents only)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from automixer_core.errors import ConfigError


@dataclass(frozen=True)
class Candidate:
    """One mixture to train target proxies on.

    Attributes:
        name: ``mixture``, ``uniform``, ``natural``, ``temperature``, ``final`` or ``all``.
        weights: group → token share (sums to 1; 0 allowed): per domain, or per mixture group.
        source: where the weights came from (a mixture URI, or the rule in words).
        membership: with validation by groups, the URI of the ``membership.parquet`` whose
            ``membership_column`` groups the documents (and whose documents alone are trained on).
        membership_digest: sha256 of that file's bytes (the digest names content, not location).
    """

    name: str
    weights: dict[str, float]
    source: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    membership: str | None = None
    membership_column: str = "group"
    membership_digest: str = ""

    @property
    def digest(self) -> str:
        """sha256 (16 hex) of the weights rounded to 12 digits (names and source excluded), and of
        the membership's content and column where set: two candidates with the same weights over
        the same documents share their trained targets."""
        payload: dict[str, object] = {k: round(v, 12) for k, v in sorted(self.weights.items())}
        if self.membership is not None:
            payload = {"weights": payload, "membership": self.membership_digest, "by": self.membership_column}
        canonical = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def target_updates(self) -> dict[str, object]:
        """What this candidate changes in the target proxy config besides its weights."""
        if self.membership is None:
            return {}
        return {"group_membership": self.membership, "membership_column": self.membership_column}


def _normalised(raw: Mapping[str, float], what: str) -> dict[str, float]:
    total = math.fsum(raw.values())
    if not raw or total <= 0 or any(v < 0 or not math.isfinite(v) for v in raw.values()):
        raise ConfigError(
            f"The {what} weights {dict(raw)} cannot be normalised",
            expected="finite weights ≥ 0 with a positive sum",
            fix="check the corpus: every domain needs documents",
        )
    return {k: raw[k] / total for k in sorted(raw)}


def uniform_weights(domains: list[str]) -> dict[str, float]:
    """Equal weight per domain."""
    return _normalised({d: 1.0 for d in domains}, "uniform")


def natural_weights(tokens: Mapping[str, int]) -> dict[str, float]:
    """Each domain's share of the corpus tokens: w_d = n_d / Σ n."""
    return _normalised({d: float(n) for d, n in tokens.items()}, "natural")


def temperature_weights(tokens: Mapping[str, int], tau: float) -> dict[str, float]:
    """Temperature-scaled shares: w_d ∝ (n_d / Σ n)^(1/τ); τ = 1 is natural, τ → ∞ uniform."""
    if tau <= 0:
        raise ConfigError(f"temperature τ = {tau}", expected="τ > 0", fix="set validation.temperature > 0")
    shares = natural_weights(tokens)
    return _normalised({d: s ** (1.0 / tau) for d, s in shares.items()}, f"temperature (τ={tau})")


def mixture_weights(domain_weights: Mapping[str, float], domains: list[str], source: str) -> dict[str, float]:
    """A mixture's per-domain weights over the corpus's domains (absent domains get 0).

    Raises:
        ConfigError: the mixture names a domain the corpus does not have.
    """
    unknown = sorted(set(domain_weights) - set(domains))
    if unknown:
        raise ConfigError(
            f"The mixture {source} weights domain(s) {unknown} that the corpus does not have "
            f"(its domains: {sorted(domains)})",
            fix="validate a mixture published for this corpus, or point corpus.uri at its corpus",
        )
    return _normalised({d: float(domain_weights.get(d, 0.0)) for d in domains}, f"mixture {source}")


def group_weights(groups: Mapping[str, float], source: str) -> dict[str, float]:
    """A mixture's group weights (``residual`` and every floored group included, at their weight)."""
    return _normalised({g: float(w) for g, w in groups.items()}, f"mixture {source} groups")
