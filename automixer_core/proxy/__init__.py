"""Proxy runs: train a small decoder LM from scratch on a corpus and save its checkpoints.

Example::

    from automixer_core.proxy import ProxyConfig, train_proxy

    cfg = ProxyConfig(hidden=128, layers=4, vocab_size=4096, seq_len=256, steps=500, save_every=50)
    result = train_proxy(cfg, "s3://bucket/corpus", "s3://bucket/runs/proxy-1")
    result.checkpoint_uris  # ['s3://bucket/runs/proxy-1/checkpoint-50', ...]
"""

from typing import TYPE_CHECKING

from automixer_core.lazy import lazy_exports

if TYPE_CHECKING:
    from automixer_core.proxy.config import ProxyConfig
    from automixer_core.proxy.data import (
        MixtureSampler,
        PackedStream,
        load_mixture_weights,
        resolve_group_weights,
    )
    from automixer_core.proxy.train import (
        ProxyRunResult,
        SavedCheckpoint,
        build_model,
        build_optimizer,
        build_scheduler,
        lr_at,
        lr_factor,
        train_proxy,
    )

if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would make every name Any
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "automixer_core.proxy.config": ["ProxyConfig"],
            "automixer_core.proxy.data": [
                "MixtureSampler",
                "PackedStream",
                "load_mixture_weights",
                "resolve_group_weights",
            ],
            "automixer_core.proxy.train": [
                "ProxyRunResult",
                "SavedCheckpoint",
                "build_model",
                "build_optimizer",
                "build_scheduler",
                "lr_at",
                "lr_factor",
                "train_proxy",
            ],
        },
    )

__all__ = [
    "MixtureSampler",
    "PackedStream",
    "ProxyConfig",
    "ProxyRunResult",
    "SavedCheckpoint",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "load_mixture_weights",
    "lr_at",
    "lr_factor",
    "resolve_group_weights",
    "train_proxy",
]
