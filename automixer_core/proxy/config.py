"""The configuration of a proxy training run (model size, optimisation, data)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ProxyConfig(BaseModel):
    """A small decoder LM trained from scratch on a corpus, and how to train it.

    Sizes are Llama's (``transformers.LlamaConfig``). Token counts per step are
    ``batch_size × seq_len``; ``steps`` counts optimizer updates. The learning rate warms up
    linearly over ``warmup`` steps to ``lr`` and then follows a cosine down to ``lr × min_lr_ratio``
    (see :func:`automixer_core.proxy.train.lr_at`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- model ---------------------------------------------------------------------------------
    arch: Literal["llama"] = Field("llama", description="model family (transformers.LlamaConfig)")
    hidden: int = Field(128, ge=8, description="model width d")
    layers: int = Field(4, ge=1, description="decoder layers")
    heads: int = Field(4, ge=1, description="attention heads (hidden must be divisible by heads)")
    kv_heads: int | None = Field(None, ge=1, description="key/value heads (GQA); None = heads")
    intermediate: int | None = Field(None, ge=1, description="MLP width; None = 4 × hidden")
    vocab_size: int = Field(4096, ge=260, description="BPE vocabulary size to train (≥ 256 bytes + specials)")
    seq_len: int = Field(256, ge=8, description="tokens per packed training sequence")
    max_positions: int = Field(
        2048, ge=8, description="positions the model accepts at evaluation (RoPE: no weights; ≥ seq_len)"
    )
    tie_embeddings: bool = Field(True, description="the output head shares the token embedding matrix")
    rope_theta: float = Field(10000.0, gt=0, description="base of the rotary position frequencies")

    # --- optimisation --------------------------------------------------------------------------
    batch_size: int = Field(16, ge=1, description="sequences per step")
    steps: int = Field(1000, ge=1, description="optimizer updates")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    warmup: int = Field(100, ge=0, description="linear warm-up steps")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final LR as a fraction of lr")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decay (matrices only; not norms)")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW first-moment decay")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW second-moment decay")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon")
    grad_clip: float | None = Field(1.0, gt=0, description="max global grad norm; None = no clipping")
    seed: int = Field(0, description="seed of the initialisation and of the data order")

    # --- checkpoints ---------------------------------------------------------------------------
    save_every: int = Field(100, ge=1, description="save a checkpoint every this many steps (and at the end)")
    save_optimizer: bool = Field(True, description="write optimizer.pt (AdamW state, incl. exp_avg_sq)")

    # --- data ----------------------------------------------------------------------------------
    group_weights: dict[str, float] | str | None = Field(
        None,
        description="sampling weight per group (token share): a dict, the path/URI of a mixture JSON "
        "({'groups': [{'name', 'weight'}, ...]}), or None for uniform over the corpus's groups",
    )
    text_field: str = Field("text", description="the document field holding the text")
    id_field: str = Field("id", description="the document field holding its id")
    group_field: str = Field(
        "domain", description="the document field naming its group (else the folder name)"
    )
    group_membership: str | None = Field(
        None,
        description="path/URI of a published membership.parquet: each document's group is its "
        "membership_column there (not group_field), and documents it does not name are left out",
    )
    membership_column: Literal["group", "domain"] = Field(
        "group", description="group_membership: the mixture's groups, or the scored documents' domains"
    )
    max_docs_per_group: int | None = Field(
        None, ge=1, description="read at most this many documents per group (the first in file order)"
    )
    max_docs: int | None = Field(None, ge=1, description="read at most this many documents in total")
    tokenizer: str | None = Field(
        None, description="path/URI of a saved tokenizer to use instead of training one on the corpus"
    )
    tokenizer_docs: int = Field(
        2000, ge=1, description="documents (spread over groups) to train the BPE tokenizer on"
    )
    tokenizer_max_chars: int = Field(
        20_000, ge=100, description="characters kept per tokenizer-training document"
    )

    # --- runtime -------------------------------------------------------------------------------
    num_threads: int | None = Field(
        None, ge=1, description="torch CPU threads; None = one per 128 of hidden, at most the cores"
    )
    device: str = Field("cpu", description="torch device of the training (cpu, cuda, cuda:N)")

    @model_validator(mode="after")
    def _check_shapes(self) -> ProxyConfig:
        if self.hidden % self.heads:
            raise ValueError(
                f"hidden={self.hidden} is not divisible by heads={self.heads}; "
                "fix: choose heads that divide hidden (e.g. hidden=128, heads=4)"
            )
        if (self.hidden // self.heads) % 2:
            raise ValueError(
                f"head size hidden/heads={self.hidden // self.heads} is odd; fix: rotary embeddings need an even head size"
            )
        if self.heads % self.num_kv_heads:
            raise ValueError(
                f"heads={self.heads} is not divisible by kv_heads={self.kv_heads}; "
                "fix: choose kv_heads that divide heads"
            )
        if self.warmup > self.steps:
            raise ValueError(f"warmup={self.warmup} exceeds steps={self.steps}; fix: lower warmup")
        if isinstance(self.group_weights, dict):
            bad = {k: v for k, v in self.group_weights.items() if v < 0}
            if bad:
                raise ValueError(f"group_weights has negative weights {bad}; fix: use weights ≥ 0")
            if sum(self.group_weights.values()) <= 0:
                raise ValueError("group_weights sum to 0; fix: give at least one group a positive weight")
        return self

    @property
    def num_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def mlp_width(self) -> int:
        return self.intermediate if self.intermediate is not None else 4 * self.hidden

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


def demo_proxy_config(steps: int = 480, **overrides: object) -> ProxyConfig:
    """The demo's proxy: 393K parameters (d=64, 2 layers, vocab 4096), 16 × 128 tokens a step,
    a checkpoint every steps/8; 480 steps = 983K tokens, about 2 minutes on one CPU thread."""
    fields: dict[str, object] = {
        "hidden": 64,
        "layers": 2,
        "heads": 4,
        "vocab_size": 4096,
        "seq_len": 128,
        "batch_size": 16,
        "steps": steps,
        "warmup": steps // 10,
        "lr": 3e-3,
        "save_every": max(1, steps // 8),
        "seed": 0,
        "max_docs_per_group": 1000,
    }
    fields.update(overrides)
    return ProxyConfig.model_validate(fields)
