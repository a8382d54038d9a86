"""Finding the checkpoints a training run saved, and loading one.

- :mod:`.refs`: :class:`CheckpointRef`, :class:`DiscoveryResult`, and the naming and file rules
  that make a folder a checkpoint (:func:`parse_step`).
- :mod:`.hub`: checkpoints that are the branches of a Hugging Face hub repo (``hf://org/name``).
- :mod:`.discovery`: :func:`discover_checkpoints`, the run-folder layouts it accepts (local or
  any fsspec URI) and the hub.
- :mod:`.loading`: :func:`load_checkpoint` and the checks on what it loads
  (:func:`non_causal_reason`, :func:`nonfinite_parameters`).
"""

from automixer_core.checkpoints.discovery import TRAINER_STATE_FILE, discover_checkpoints
from automixer_core.checkpoints.hub import HUB_SCHEME, hub_checkpoints, parse_hub_uri
from automixer_core.checkpoints.loading import (
    load_checkpoint,
    non_causal_reason,
    nonfinite_parameters,
    quiet_transformers_progress,
)
from automixer_core.checkpoints.refs import (
    CONFIG_FILE,
    WEIGHT_FILES,
    CheckpointRef,
    DiscoveryResult,
    parse_step,
)

__all__ = [
    "CONFIG_FILE",
    "HUB_SCHEME",
    "TRAINER_STATE_FILE",
    "WEIGHT_FILES",
    "CheckpointRef",
    "DiscoveryResult",
    "discover_checkpoints",
    "hub_checkpoints",
    "load_checkpoint",
    "non_causal_reason",
    "nonfinite_parameters",
    "parse_hub_uri",
    "parse_step",
    "quiet_transformers_progress",
]
