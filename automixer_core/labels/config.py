"""The ``labeling`` section of a run config: how unscored documents get a group (issue 13)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from automixer_core.schema import explicit_defaults


class PredictorConfig(BaseModel):
    """How the group predictor featurises text and what it fits."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    features: Literal["ngrams", "hidden_state", "both"] = Field(
        "ngrams",
        description="ngrams: hashed n-grams of the text (CPU, millions of documents an hour) | "
        "hidden_state: the proxy's mean last hidden state (a forward pass per document) | both",
    )
    hidden_max_tokens: int = Field(
        256, ge=1, description="features hidden_state/both: tokens of each document the proxy reads"
    )
    n_features: int = Field(
        2**20, ge=2, description="Hashed feature dimension (columns of the word n-gram matrix)."
    )
    ngram_max: int = Field(2, ge=1, description="Word n-grams of length 1..ngram_max are features.")
    char_ngrams: bool = Field(
        False,
        description="Also use char_wb 3-5-grams (n_features more columns); slower, better on short texts.",
    )
    max_chars: int | None = Field(
        4000,
        ge=1,
        description="Each text is cut to its first max_chars characters before featurising (None: whole).",
    )
    alpha: float = Field(1e-5, gt=0, description="L2 penalty of the SGD classifier (scikit-learn's alpha).")
    epochs: int = Field(
        20, ge=1, description="Passes of SGD over the training documents (max_iter, tol=None)."
    )
    holdout: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Fraction of each group's scored documents held out for the report (0: none).",
    )
    min_docs_per_group: int = Field(
        5, ge=1, description="A group with fewer scored documents than this is refused with an error."
    )
    predict_scores: bool = Field(
        True, description="Also fit a linear regressor per score column and predict the scores."
    )
    score_alpha: float = Field(
        0.1,
        gt=0,
        description="L2 penalty of the score regressor (Ridge alpha, on standardised score columns).",
    )
    seed: int = Field(0, description="Seed of the holdout split and of SGD.")


class LabelingConfig(BaseModel):
    """``automixer label``: a group predictor trained on a mixture's scored documents labels the rest
    of the corpus. Not part of a mixture's identity (the mixture is what was scored)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=explicit_defaults)

    predictor: PredictorConfig = Field(
        default_factory=PredictorConfig, description="the text classifier (hashed n-grams + a linear model)"
    )
    shard_docs: int = Field(
        5000,
        ge=1,
        description="documents per labelling shard (labelling costs about 1/1000 of scoring per document, "
        "so its shards are larger than corpus.shard_docs)",
    )
    shards_per_task: int = Field(2, ge=1, description="labelling shards per task (the unit of fan-out)")
    write_documents: bool = Field(
        True,
        description="also copy each document into labels/ID/by_group/GROUP/ (one jsonl per shard), "
        "the folder per group that trainers read",
    )
