"""The ``validation:`` section of a run config: which candidates, which target proxy, how many seeds."""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from automixer_core.proxy.config import ProxyConfig, demo_proxy_config
from automixer_core.schema import explicit_defaults

#: What a candidate can be. ``mixture``: the run's published mixture (or ``--mixture``);
#: ``uniform``: equal weight per domain; ``natural``: each domain's share of the corpus tokens;
#: ``temperature``: natural shares to the power 1/τ, renormalised; ``final`` and ``all``: the
#: paper's ablations, mixtures the remix builds from the final checkpoint only, or from every
#: checkpoint (α by step).
CANDIDATE_KINDS = ("mixture", "uniform", "natural", "temperature", "final", "all")
CandidateKind = Literal["mixture", "uniform", "natural", "temperature", "final", "all"]


class ValidationConfig(BaseModel):
    """Train target proxies on candidate mixtures and compare them (DESIGN §6).

    Every candidate is trained with the same target proxy config (so the same token budget:
    ``steps × batch_size × seq_len``) and the same tokenizer, once per seed; seed s of every
    candidate shares the model initialisation and the data order (the groups drawn differ), so
    differences are paired over seeds as well as over questions.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=explicit_defaults)

    candidates: list[CandidateKind] = Field(
        default_factory=lambda: cast(list[CandidateKind], ["mixture", "uniform", "natural", "temperature"]),
        description="candidates to train: mixture | uniform | natural | temperature | final | all",
    )
    baselines: list[CandidateKind] = Field(
        default_factory=lambda: cast(list[CandidateKind], ["uniform", "natural", "temperature"]),
        description="the candidates every other candidate is compared with (paired differences)",
    )
    sample_by: Literal["domains", "groups"] = Field(
        "domains",
        description="domains: every candidate is a weight per corpus domain (the mixture's per-domain "
        "weights) | groups: the mixture candidates sample the mixture's groups (its membership, residual "
        "at weight 0) as a trainer sampling by group would, and the baselines weight the domains of "
        "the same scored documents",
    )
    temperature: float = Field(2.0, gt=0, description="τ of the temperature candidate: w ∝ share^(1/τ)")
    seeds: int = Field(3, ge=1, le=64, description="target runs per candidate (seeds 0..seeds-1)")
    target: ProxyConfig = Field(
        default_factory=demo_proxy_config,
        description="the target proxy every candidate trains (size, steps, batch: the token budget)",
    )
    eval_limit: int | None = Field(
        None, ge=1, description="questions per benchmark (null: benchmarks.eval_limit)"
    )
    bootstrap: int = Field(1000, ge=10, description="bootstrap resamples (questions × seeds) per interval")
    ci: float = Field(0.9, gt=0, lt=1, description="interval coverage")
    seed: int = Field(0, description="seed of the bootstrap")

    @field_validator("candidates", "baselines")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"{v} lists a candidate twice; list each once")
        return v

    @model_validator(mode="after")
    def _baselines_are_candidates(self) -> ValidationConfig:
        if not self.candidates:
            raise ValueError("candidates is empty; list at least two, e.g. [mixture, uniform]")
        missing = [b for b in self.baselines if b not in self.candidates]
        if missing:
            raise ValueError(
                f"baselines {missing} are not among the candidates {self.candidates}; add them to candidates"
            )
        if self.target.group_weights is not None:
            raise ValueError("target.group_weights is set; each candidate sets its own weights, leave it out")
        return self

    @property
    def tokens_per_run(self) -> int:
        """The token budget of every target run."""
        return self.target.steps * self.target.tokens_per_step
