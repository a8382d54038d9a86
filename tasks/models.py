"""One loaded model per worker process, reused by consecutive tasks on the same checkpoint."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch

from automixer_core.checkpoints import CheckpointRef, load_checkpoint, nonfinite_parameters

_LOCK = threading.Lock()
_CACHE: dict[str, tuple[Any, Any]] = {}  # "<fingerprint>@<device>" -> (model, tokenizer); one at a time
_IN_USE: dict[int, threading.Lock] = {}
_NONFINITE: dict[
    str, list[str]
] = {}  # fingerprint -> its non-finite parameters (scanned once)  # id(model) -> held while hooks are attached to it


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` where a GPU is present, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def checkpoint_ref(checkpoint: dict[str, Any]) -> CheckpointRef:
    return CheckpointRef(
        name=checkpoint["name"],
        uri=checkpoint["uri"],
        step=checkpoint["step"],
        fingerprint=checkpoint["fingerprint"],
        revision=checkpoint.get("revision"),
    )


def cached_model(checkpoint: dict[str, Any], device: str) -> tuple[Any, Any]:
    """(model, tokenizer) of ``checkpoint`` on ``device``, in eval mode; loaded once per process."""
    key = f"{checkpoint['fingerprint']}@{device}"
    with _LOCK:
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = load_checkpoint(checkpoint_ref(checkpoint), device=device)
        return _CACHE[key]


@contextlib.contextmanager
def exclusive_model(checkpoint: dict[str, Any], device: str) -> Iterator[tuple[Any, Any]]:
    """:func:`cached_model`, held by this thread alone for the block.

    The influence engine attaches hooks to the model's modules, so two threads of one process (a
    thread-pool task runner, a Dask worker with several threads) must not run it on one model
    object at the same time; they take turns here instead.
    """
    model, tokenizer = cached_model(checkpoint, device)
    with _LOCK:
        lock = _IN_USE.setdefault(id(model), threading.Lock())
    with lock:
        yield model, tokenizer


def nonfinite_names(checkpoint: dict[str, Any], model: Any) -> list[str]:
    """:func:`nonfinite_parameters` of the checkpoint's model, scanned once per process (every
    benchmark's evaluation of one checkpoint asks)."""
    fp = checkpoint["fingerprint"]
    if fp not in _NONFINITE:
        _NONFINITE[fp] = nonfinite_parameters(model)
    return _NONFINITE[fp]
