"""What a checkpoint is: its reference (:class:`CheckpointRef`), a discovery's result, and the
naming and file rules that make a folder one.

A checkpoint must be in Hugging Face format (``config.json`` and ``*.safetensors`` or
``pytorch_model.bin`` at its top level); :func:`parse_step` reads the training step a folder or
revision name encodes, and :func:`_missing_reason` says why a folder is not a loadable checkpoint.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from automixer_core.errors import CheckpointError

CONFIG_FILE = "config.json"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_STEP_RE = re.compile(r"^(?:checkpoint|global_step|step|iter|ckpt)[-_]?(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint found by :func:`discover_checkpoints`.

    Attributes:
        name: the checkpoint folder's name (``checkpoint-1000``) or the hub revision (``step1000``).
        uri: where it lives: a local path, ``s3://...`` prefix, or ``hf://org/name@revision``.
        step: the training step (0 for a lone checkpoint that names no step anywhere).
        fingerprint: 16 hex digits that change when any of its files changes, and only then
            (names + sizes + etags/mtimes; for hub revisions the commit hash).
        revision: the hub revision, for ``hf://`` checkpoints; else None.
    """

    name: str
    uri: str
    step: int
    fingerprint: str
    revision: str | None = None


@dataclass
class DiscoveryResult:
    """Checkpoints ordered by step (then name), and what was skipped as ``(uri, reason)``."""

    checkpoints: list[CheckpointRef] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def steps(self) -> list[int]:
        return [c.step for c in self.checkpoints]


def _check_unique_steps(checkpoints: list[CheckpointRef], where: str) -> None:
    """Raise CheckpointError when two checkpoints resolve to the same training step (naming both)."""
    by_step: dict[int, list[CheckpointRef]] = defaultdict(list)
    for c in checkpoints:
        by_step[c.step].append(c)
    clashes = {step: refs for step, refs in sorted(by_step.items()) if len(refs) > 1}
    if not clashes:
        return
    shown = "; ".join(
        f"step {step}: " + " and ".join(repr(r.uri) for r in sorted(refs, key=lambda r: r.name))
        for step, refs in clashes.items()
    )
    names = sorted(r.name for refs in clashes.values() for r in refs)
    raise CheckpointError(
        f"Checkpoints under {where!r} resolve to the same training step ({shown})",
        expected="one checkpoint folder per step (the step picks the artifact model and weighs its benchmark)",
        fix=f"remove or rename the duplicate folder among {names} (often a copy of the same checkpoint), "
        "or keep one of them with revision=[...] (checkpoints.revision in the run config)",
    )


def parse_step(name: str) -> int | None:
    """The step a checkpoint name encodes (``checkpoint-100``, ``step100``, ``iter_0000100`` -> 100), else None."""
    m = _STEP_RE.match(name.strip("/"))
    return int(m.group(1)) if m else None


def _is_weight_file(name: str) -> bool:
    if name in WEIGHT_FILES:
        return True
    # sharded safetensors: model-00001-of-00004.safetensors
    return name.endswith(".safetensors") and name.startswith("model")


def _missing_reason(name: str, files: set[str]) -> str | None:
    """Why a folder with these top-level files is not a loadable HF checkpoint, or None."""
    missing = []
    if CONFIG_FILE not in files:
        missing.append("config.json")
    if not any(_is_weight_file(f) for f in files):
        missing.append("model weights (*.safetensors or pytorch_model.bin)")
    if not missing:
        return None
    reason = "missing " + " and ".join(missing)
    if any(f.startswith("mp_rank_") or f == "model_optim_rng.pt" for f in files) or name.startswith("iter_"):
        reason += "; Megatron-native checkpoints need conversion to Hugging Face format first"
    elif any(f.endswith("_model_states.pt") for f in files):
        reason += "; DeepSpeed-native checkpoints need zero_to_fp32 / conversion to Hugging Face format first"
    else:
        reason += "; save it with model.save_pretrained(...) (or the write may still be in progress)"
    return reason
