"""Configuration of the influence engine (DESIGN §1 step 3, §2).

One pydantic model, validated at the edge; every field is an option of the method with the
stated default. Unknown keys are rejected so a typo in a YAML run config fails loudly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Estimator = Literal["grad_dot", "datainf", "cosine"]
LayerPreset = Literal["embed_head", "all_linear"]


class InfluenceConfig(BaseModel):
    """How query vectors are built and documents are scored.

    Attributes:
        estimator: ``grad_dot`` (w_b = v_b, TracIn-like), ``datainf`` (the paper's estimator:
            per-layer Sherman–Morrison approximation of the damped inverse Hessian, DESIGN §1.3)
            or ``cosine`` (LESS-like: ⟨g_x, w_b⟩ / ‖g_x‖ with w_b = v_b / ‖v_b‖).
        adam: divide w_b elementwise by √v̂ + ε from the checkpoint's AdamW state (LESS-like).
        layers: the parameter blocks P: ``embed_head`` (token embedding + output head, the
            paper's discriminative layer selection), ``all_linear`` (every ``nn.Linear`` /
            GPT-2 ``Conv1D`` weight, the output head included), or a list of module-name
            patterns (fnmatch; prefix ``re:`` for a regular expression).
        hessian_samples: n, the number of corpus documents in DataInf's Hessian sample.
        damping: the factor in λ_l = damping · mean_i ‖g_il‖² / d_l (paper/DataInf: 0.1).
        batch_size: rows (context windows) per forward/backward.
        max_length: context window in tokens; ``None`` = the model's maximum positions.
            Longer documents are split into windows that overlap by one token, so every
            next-token prediction of the document is made exactly once (ours).
        autocast: ``off`` (fp32) or a mixed-precision dtype for the model's matmuls; the
            influence contractions always run in fp32.
        padding_side: where batches are padded; scores do not depend on it (tested).
        norm_method: how a linear layer's per-document gradient norm is computed: ``gram``
            (Σ_{t,s}(a_t·a_s)(δ_t·δ_s), never forms δᵀa), ``materialize`` (‖δᵀa‖²) or ``auto``
            (whichever costs fewer flops for the batch's padded length).
        chunk_mb: memory budget (MiB) for per-document gradient chunks such as δᵀa [B,d_out,d_in].
        sort_buffer: documents buffered and sorted by length before batching (less padding);
            results keep the input order.
        compute_grad_norm: also report ‖∇_P ℓ(x)‖ when the estimator does not need it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    estimator: Estimator = Field(
        default="datainf", description="datainf (paper) | grad_dot (TracIn-like) | cosine (LESS-like)"
    )
    adam: bool = Field(
        default=False, description="precondition by the checkpoint's Adam second moment (√v̂+ε)"
    )
    layers: LayerPreset | list[str] = Field(
        default="embed_head", description="embed_head (paper) | all_linear | list of module-name patterns"
    )
    hessian_samples: int = Field(
        default=256, ge=1, description="corpus documents in DataInf's Hessian sample"
    )
    hessian_seed: int = Field(
        default=0, description="seed of the Hessian sample's draw (which documents; the scores name them)"
    )
    query_loss: Literal["sum", "mean"] = Field(
        default="sum",
        description="loss of a query example: sum (the gold continuation's summed NLL, as lm-eval scores "
        "it) | mean (per continuation token, so long answers do not weigh more)",
    )
    damping: float = Field(default=0.1, gt=0, description="λ_l = damping · mean‖g_l‖² / d_l")
    batch_size: int = Field(default=16, ge=1, description="rows (context windows) per forward/backward")
    max_length: int | None = Field(
        default=None, ge=2, description="context window in tokens (None: the model's)"
    )
    autocast: Literal["off", "bf16", "fp16"] = Field(
        default="off", description="mixed precision of the model's matmuls"
    )
    padding_side: Literal["right", "left"] = Field(
        default="right", description="batch padding side (scores do not depend on it)"
    )
    norm_method: Literal["auto", "gram", "materialize"] = Field(
        default="auto", description="how per-document gradient norms are computed"
    )
    chunk_mb: float = Field(
        default=256.0, gt=0, description="memory budget (MiB) for per-document gradient chunks"
    )
    sort_buffer: int = Field(default=1024, ge=1, description="documents sorted by length before batching")
    compute_grad_norm: bool = Field(default=False, description="also report ‖∇_P ℓ(x)‖")

    @field_validator("layers")
    @classmethod
    def _patterns_not_empty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and (not v or any(not p.strip() for p in v)):
            raise ValueError(
                "layers must be 'embed_head', 'all_linear' or a non-empty list of non-empty module-name patterns"
            )
        return v

    @property
    def needs_grad_norm(self) -> bool:
        """Whether scoring must compute per-document gradient norms."""
        return self.estimator == "cosine" or self.compute_grad_norm

    @property
    def chunk_bytes(self) -> int:
        """``chunk_mb`` in bytes."""
        return max(1, int(self.chunk_mb * (1 << 20)))

    def layers_key(self) -> str:
        """A stable string for the layer selection (stored in query-vector metadata)."""
        return self.layers if isinstance(self.layers, str) else "patterns:" + ",".join(self.layers)
