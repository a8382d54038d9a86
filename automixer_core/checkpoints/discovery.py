"""Finding the checkpoints a training run saved.

:func:`discover_checkpoints` accepts

- a run folder (local or any fsspec URI, ``s3://`` included) whose sub-folders are checkpoints
  named ``checkpoint-<step>`` (HF Trainer), ``step<N>`` / ``step_<N>`` / ``step-<N>`` (Pythia,
  OLMo), ``global_step<N>`` (DeepSpeed), ``iter_<N>`` (Megatron, ``iter_0001000``), ``ckpt-<N>``,
  or any name when the folder holds a ``trainer_state.json`` (step = its ``global_step``).
  Checkpoint folders may sit deeper than the first level; a checkpoint folder's own
  sub-folders are not searched (DeepSpeed's ``checkpoint-100/global_step100`` is one checkpoint);
- a single checkpoint folder (``config.json`` and weights at its top level);
- a Hugging Face hub model repo ``hf://org/name`` whose branches are checkpoints (Pythia's
  ``step1000``), optionally restricted with ``revision=``.

A checkpoint must be in Hugging Face format (``config.json`` and ``*.safetensors`` or
``pytorch_model.bin`` at its top level); others are reported in ``DiscoveryResult.skipped`` with
the reason, and logged, and discovery goes on.
"""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict

from automixer_core.checkpoints.hub import HUB_SCHEME, _discover_hub
from automixer_core.checkpoints.refs import (
    CONFIG_FILE,
    CheckpointRef,
    DiscoveryResult,
    _check_unique_steps,
    _is_weight_file,
    _missing_reason,
    parse_step,
)
from automixer_core.errors import CheckpointError, StorageError
from automixer_core.store import Store

logger = logging.getLogger(__name__)

TRAINER_STATE_FILE = "trainer_state.json"


def _trainer_state_step(store: Store, key: str) -> tuple[int | None, str | None]:
    """(global_step, None) from a trainer_state.json, or (None, reason)."""
    try:
        state = store.read_json(key)
        return int(state["global_step"]), None
    except (StorageError, KeyError, TypeError, ValueError) as exc:
        return None, f"{TRAINER_STATE_FILE} gives no step ({type(exc).__name__}: {exc})"


def discover_checkpoints(uri: str, *, revision: str | list[str] | None = None) -> DiscoveryResult:
    """Find the checkpoints under ``uri`` (see the module doc for layouts), ordered by step.

    Args:
        uri: a run folder, a single checkpoint folder (local or any fsspec URI), or ``hf://org/name``.
        revision: for ``hf://`` URIs the hub revisions to take (default: every branch whose name
            encodes a step). For other URIs, the checkpoint folder names to keep.

    Returns:
        the checkpoints (with step and fingerprint) and the skipped folders with reasons.

    Raises:
        CheckpointError: the prefix is empty, missing or unreadable; nothing under it is a usable
            checkpoint; a requested revision does not exist.
    """
    uri = str(uri)
    if uri.startswith(HUB_SCHEME):
        return _discover_hub(uri, revision)
    try:
        store = Store(uri)
        keys = store.list("")
        is_file = bool(keys == [""])
    except StorageError as exc:
        raise CheckpointError(
            f"Cannot read checkpoint location {uri!r}: {exc}",
            fix="check the URI, that the bucket/folder exists, and the credentials in the environment",
        ) from exc
    if is_file:
        raise CheckpointError(
            f"{uri!r} is a file",
            expected="a run folder holding checkpoint folders, or one checkpoint folder",
            fix="pass the folder that holds config.json and the weights (or its parent)",
        )
    if not keys:
        raise CheckpointError(
            f"Checkpoint location {uri!r} is empty or does not exist",
            expected="checkpoint folders such as checkpoint-1000/ or step1000/ holding config.json and weights",
            fix="check the URI (and, for s3://, AWS_ENDPOINT_URL), or wait for the run to save a checkpoint",
        )

    files: dict[str, set[str]] = defaultdict(set)  # folder key ("" = root) -> its direct file names
    for key in keys:
        folder, name = posixpath.split(key)
        files[folder].add(name)
        while folder:
            folder = posixpath.dirname(folder)
            files.setdefault(folder, set())

    def add(result: DiscoveryResult, folder: str, name: str, step_from_name: int | None) -> None:
        folder_uri = store.uri(folder)
        reason = _missing_reason(name, files[folder])
        step = step_from_name
        if reason is None and step is None and TRAINER_STATE_FILE in files[folder]:
            step, reason = _trainer_state_step(store, posixpath.join(folder, TRAINER_STATE_FILE))
        if reason is not None:
            result.skipped.append((folder_uri, reason))
            return
        result.checkpoints.append(
            CheckpointRef(
                name=name,
                uri=folder_uri,
                step=step if step is not None else 0,
                fingerprint=store.fingerprint(folder),
            )
        )

    # checkpoint folders below the root: the outermost folders named by a step or holding trainer_state
    result = DiscoveryResult()
    taken: list[str] = []
    for folder in sorted(files, key=lambda f: (f.count("/"), f)):
        if not folder or any(folder.startswith(t + "/") for t in taken):
            continue
        name = posixpath.basename(folder)
        step = parse_step(name)
        if step is not None or TRAINER_STATE_FILE in files[folder]:
            taken.append(folder)
            add(result, folder, name, step)
        elif CONFIG_FILE in files[folder] or any(_is_weight_file(f) for f in files[folder]):
            taken.append(folder)
            result.skipped.append(
                (
                    store.uri(folder),
                    "holds a model but its name encodes no step and it has no trainer_state.json; "
                    "rename it checkpoint-<step>",
                )
            )

    root_files = files[""]
    if CONFIG_FILE in root_files or any(_is_weight_file(f) for f in root_files):
        if result.checkpoints:  # e.g. an HF Trainer output_dir: final model at the root + checkpoint-*/
            result.skipped.append(
                (
                    store.uri(""),
                    "the run folder's own model is left out because the folder holds checkpoint "
                    "folders; to include it, save it as checkpoint-<step> beside them",
                )
            )
        else:  # the URI is one checkpoint (sub-folders such as DeepSpeed's global_step*/ are its own)
            result = DiscoveryResult()
            root_name = posixpath.basename(store.path().rstrip("/"))
            add(result, "", root_name, parse_step(root_name))
    for folder_uri, reason in result.skipped:
        logger.warning("Skipping checkpoint %s: %s", folder_uri, reason)

    if revision is not None:
        wanted = [revision] if isinstance(revision, str) else list(revision)
        names = {c.name for c in result.checkpoints}
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise CheckpointError(
                f"No checkpoint(s) named {unknown} under {uri!r} (found: {sorted(names)})",
                fix="pass names of checkpoint folders as revision=, or no revision for all",
            )
        result.checkpoints = [c for c in result.checkpoints if c.name in set(wanted)]

    if not result.checkpoints:
        detail = "; ".join(f"{u}: {r}" for u, r in result.skipped[:3])
        raise CheckpointError(
            f"No usable checkpoint under {uri!r}" + (f" ({detail})" if detail else ""),
            expected="folders named checkpoint-<step>, step<N>, step_<N>, global_step<N> or iter_<N> "
            "(or holding trainer_state.json), each with config.json and *.safetensors/pytorch_model.bin",
            fix="point the URI at the run folder that holds the checkpoint folders",
        )
    _check_unique_steps(result.checkpoints, uri)
    result.checkpoints.sort(key=lambda c: (c.step, c.name))
    return result
