"""Finding the checkpoints a training run saved, and loading one.

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
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automixer_core.errors import CheckpointError, ModelError, StorageError
from automixer_core.store import Store

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

HUB_SCHEME = "hf://"
CONFIG_FILE = "config.json"
TRAINER_STATE_FILE = "trainer_state.json"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_STEP_RE = re.compile(r"^(?:checkpoint|global_step|step|iter|ckpt)[-_]?(\d+)$", re.IGNORECASE)
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


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


# --- hub ---------------------------------------------------------------------------------------


def parse_hub_uri(uri: str) -> tuple[str, str | None]:
    """``hf://org/name[@revision]`` -> (``org/name``, revision or None)."""
    rest = uri[len(HUB_SCHEME) :].strip("/")
    if rest.startswith("models/"):
        rest = rest[len("models/") :]
    revision = None
    if "@" in rest:
        rest, revision = rest.split("@", 1)
    if rest.count("/") != 1 or not all(rest.split("/")):
        raise CheckpointError(
            f"{uri!r} is not a hub model URI",
            expected="hf://<org>/<name> or hf://<org>/<name>@<revision>",
            fix="write the repository id after hf://, e.g. hf://EleutherAI/pythia-70m",
        )
    return rest, revision or None


def hub_checkpoints(
    repo_id: str, refs: list[tuple[str, str]], revision: str | list[str] | None = None
) -> DiscoveryResult:
    """Checkpoint refs for a hub repo, given its refs as ``(name, commit)`` (no network).

    Without ``revision`` every ref whose name encodes a step is a checkpoint (others such as
    ``main`` are ignored), or, when none does, ``main`` alone is (step 0). With ``revision`` exactly
    those revisions are, in the given set; a name that is not a ref but a 40-digit commit is taken
    as is.

    Raises:
        CheckpointError: a requested revision is not among the refs; no ref at all.
    """
    commits = dict(refs)
    result = DiscoveryResult()
    if revision is None:
        names = [n for n in commits if parse_step(n) is not None]
        if not names:
            names = ["main"] if "main" in commits else []
    else:
        names = [revision] if isinstance(revision, str) else list(revision)
        unknown = [n for n in names if n not in commits and not _SHA_RE.match(n)]
        if unknown:
            stepped = sorted(
                (n for n in commits if parse_step(n) is not None), key=lambda n: parse_step(n) or 0
            )
            shown = ", ".join(stepped[:3] + (["...", *stepped[-2:]] if len(stepped) > 5 else stepped[3:]))
            raise CheckpointError(
                f"Hub repo {repo_id!r} has no revision(s) {unknown}",
                expected=f"one of its refs ({shown or 'none with a step in the name'})",
                fix="check the revision names (e.g. step1000) on the repo's branches page",
            )
    for name in names:
        commit = commits.get(name, name)
        step = parse_step(name)
        result.checkpoints.append(
            CheckpointRef(
                name=name,
                uri=f"{HUB_SCHEME}{repo_id}@{name}",
                step=step if step is not None else 0,
                fingerprint=commit[:16],
                revision=name,
            )
        )
    if not result.checkpoints:
        raise CheckpointError(
            f"Hub repo {repo_id!r} has no revision that names a step and no main branch",
            expected="branches such as step1000, step2000",
            fix="pass revision=[...] with the revisions to use",
        )
    # revisions that name no step all get step 0 on purpose; those that do must not collide
    _check_unique_steps([c for c in result.checkpoints if parse_step(c.name) is not None], f"hf://{repo_id}")
    result.checkpoints.sort(key=lambda c: (c.step, c.name))
    return result


def _hub_error(what: str, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"Cannot {what}: {type(exc).__name__}: {exc}",
        fix="check the repo id and revision, the network, HF_TOKEN for private repos, "
        "and that HF_HUB_OFFLINE is not set (offline, only revisions already in the local cache load)",
    )


def _discover_hub(uri: str, revision: str | list[str] | None) -> DiscoveryResult:
    repo_id, uri_rev = parse_hub_uri(uri)
    if uri_rev is not None:
        if revision is not None:
            raise CheckpointError(
                f"{uri!r} names a revision and revision={revision!r} was passed too",
                fix="give the revision in one place only",
            )
        revision = uri_rev
    try:
        from huggingface_hub import HfApi

        git_refs = HfApi().list_repo_refs(repo_id)
    except Exception as exc:  # offline mode, HTTP and connection errors
        raise _hub_error(f"list the revisions of hub repo {repo_id!r}", exc) from exc
    refs = [(b.name, b.target_commit) for b in git_refs.branches]
    refs += [(t.name, t.target_commit) for t in git_refs.tags]
    return hub_checkpoints(repo_id, refs, revision)


# --- fsspec storage ------------------------------------------------------------------------------


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


# --- loading -------------------------------------------------------------------------------------


@contextmanager
def quiet_transformers_progress() -> Iterator[None]:
    """Silence transformers' tqdm bars ("Loading weights", "Writing model shards") for the block."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _local_folder(ref: CheckpointRef | str | Path) -> tuple[Path, str]:
    """A local folder holding the checkpoint (downloading it when remote), and its URI."""
    uri = ref.uri if isinstance(ref, CheckpointRef) else str(ref)
    if uri.startswith(HUB_SCHEME):
        repo_id, rev = parse_hub_uri(uri)
        if isinstance(ref, CheckpointRef) and ref.revision is not None:
            rev = ref.revision
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id, revision=rev)), uri
        except Exception as exc:
            raise _hub_error(f"download {uri!r}", exc) from exc
    try:
        return Store(uri).local_dir(""), uri
    except StorageError as exc:
        raise CheckpointError(
            f"Cannot fetch checkpoint {uri!r}: {exc}",
            fix="check the URI (run discover_checkpoints again: the checkpoint may have been deleted)",
        ) from exc


def _check_weight_files(folder: Path, uri: str) -> None:
    """Raise CheckpointError naming the first weight file whose header cannot be read."""
    from safetensors import safe_open

    present = {p.name for p in folder.iterdir() if p.is_file()}
    reason = _missing_reason(folder.name, present)
    if reason is not None:
        raise CheckpointError(
            f"Checkpoint {uri!r} is incomplete: {reason}",
            fix="load a complete checkpoint (see discover_checkpoints(...).skipped)",
        )
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    f.get_slice(key).get_shape()
        except Exception as exc:
            raise CheckpointError(
                f"Weights file {posixpath.join(uri, path.name)!r} is corrupt: {exc}",
                expected="a complete safetensors file",
                fix="re-save or re-upload this checkpoint, or exclude it (revision=...)",
            ) from exc


def load_checkpoint(
    ref: CheckpointRef | str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    tokenizer: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a checkpoint's causal LM (in eval mode, on ``device``) and its tokenizer.

    Args:
        ref: a :class:`CheckpointRef`, or the URI / path of one checkpoint folder (or ``hf://org/name@rev``).
        device: where to put the model.
        dtype: the model's dtype (default: as saved).
        tokenizer: a local folder or URI to take the tokenizer from when the checkpoint has none.

    Raises:
        CheckpointError: the checkpoint is missing, incomplete, or a weights file is corrupt
            (the message names the file); the tokenizer has more tokens than the model has
            input-embedding rows.
        ModelError: the checkpoint is not a causal (decoder-only) LM (an encoder such as a BERT
            masked-LM, or an encoder-decoder).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, uri = _local_folder(ref)
    _check_weight_files(folder, uri)
    try:
        config = AutoConfig.from_pretrained(str(folder))
    except Exception as exc:
        raise CheckpointError(
            f"Cannot read the config.json of checkpoint {uri!r}: {type(exc).__name__}: {exc}",
            fix="check config.json (model_type must be one transformers knows); re-save the checkpoint",
        ) from exc
    problem = non_causal_reason(config)
    if problem is not None:
        raise ModelError(
            f"Checkpoint {uri!r} is not a causal language model: it is {problem}",
            expected="a causal (decoder-only) LM, e.g. *ForCausalLM such as Llama, GPT-2, GPT-NeoX, Qwen2, "
            "Mistral; only those are supported",
            fix="point checkpoints.uri at the checkpoints of a decoder-only LM training run",
        )
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        with quiet_transformers_progress():
            model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except Exception as exc:
        mismatched = _shape_mismatches(folder, config)
        if mismatched:
            raise CheckpointError(
                f"Checkpoint {uri!r}: {len(mismatched)} weight(s) do not have the shape its config.json "
                f"implies: {'; '.join(mismatched[:3])}",
                expected="weights saved with the config.json beside them",
                fix="re-save the checkpoint with the model's own config (model.save_pretrained), or "
                "restore the config.json it was trained with",
            ) from exc
        raise CheckpointError(
            f"Cannot load the model of checkpoint {uri!r}: {type(exc).__name__}: {exc}",
            fix="check config.json and the weight files (re-save or re-upload the checkpoint)",
        ) from exc
    model.to(device)  # type: ignore[arg-type]  # transformers' wrapped .to confuses mypy
    model.eval()
    tok_source = folder
    if tokenizer is not None:
        tok_uri = str(tokenizer)
        try:
            tok_source = Store(tok_uri).local_dir("")
        except StorageError as exc:
            raise CheckpointError(
                f"Cannot fetch tokenizer {tok_uri!r}: {exc.found}", fix="check the URI"
            ) from exc
    try:
        tok = AutoTokenizer.from_pretrained(str(tok_source))
    except Exception as exc:
        raise CheckpointError(
            f"Cannot load a tokenizer from {uri if tokenizer is None else str(tokenizer)!r}: "
            f"{type(exc).__name__}: {exc}",
            expected="tokenizer.json / tokenizer_config.json in the checkpoint folder",
            fix="save the tokenizer into the checkpoint (tokenizer.save_pretrained) or pass tokenizer=<folder>",
        ) from exc
    _check_vocab_fits(model, tok, uri, None if tokenizer is None else str(tokenizer))
    return model, tok


def _shape_mismatches(folder: Path, config: Any) -> list[str]:
    """``"<name>: saved (a, b), config.json implies (c, d)"`` for each safetensors weight whose shape
    differs from the model ``config`` builds (on the meta device: nothing is allocated)."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        found: dict[str, tuple[int, ...]] = {}
        for f in sorted(folder.glob("*.safetensors")):
            with safe_open(str(f), "pt") as sf:
                for k in sf.keys():  # noqa: SIM118  # safe_open is not a mapping
                    found[k] = tuple(sf.get_slice(k).get_shape())
    except Exception:  # the weights or config are broken in another way: the caller's error says so
        return []
    return [
        f"{k}: saved {found[k]}, config.json implies {expected[k]}"
        for k in found
        if k in expected and found[k] != expected[k]
    ]


def _check_vocab_fits(
    model: PreTrainedModel, tok: PreTrainedTokenizerBase, uri: str, tok_uri: str | None
) -> None:
    """Raise CheckpointError when the tokenizer has more tokens than the model has embedding rows.

    Such a token id would index past the embedding matrix (an IndexError deep inside evaluation).
    """
    try:
        emb = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return
    weight = getattr(emb, "weight", None)
    if weight is None or weight.dim() != 2:
        return
    rows, n_tok = int(weight.shape[0]), len(tok)
    if n_tok > rows:
        source = "its tokenizer" if tok_uri is None else f"the tokenizer {tok_uri!r}"
        raise CheckpointError(
            f"Checkpoint {uri!r}: {source} has {n_tok} tokens but the model's input embedding has only "
            f"{rows} rows, so token ids {rows}..{n_tok - 1} have no embedding",
            expected=f"a tokenizer of at most {rows} tokens (the one the model was trained with)",
            fix="save the tokenizer the model was trained with into the checkpoint (or pass it as tokenizer=), "
            "or resize the model's embeddings (model.resize_token_embeddings(len(tokenizer))) and re-save it",
        )


_NON_CAUSAL_HEADS = (
    "ForMaskedLM",
    "ForSequenceClassification",
    "ForTokenClassification",
    "ForQuestionAnswering",
    "ForMultipleChoice",
    "ForNextSentencePrediction",
    "ForPreTraining",
)


def non_causal_reason(config: Any) -> str | None:
    """Why a transformers config does not describe a causal (decoder-only) LM, or None when it does.

    Refused: encoder-decoder models (``is_encoder_decoder``); checkpoints whose ``architectures``
    are all non-causal heads (``BertForMaskedLM``, ``*ForSequenceClassification``, ...); encoder
    families that transformers can load through ``AutoModelForCausalLM`` (BERT, RoBERTa, ...) but
    that attend bidirectionally unless ``is_decoder`` is true.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = str(getattr(config, "model_type", "") or "")
    if getattr(config, "is_encoder_decoder", False):
        return f"an encoder-decoder model (model_type {model_type!r})"
    archs = [str(a) for a in (getattr(config, "architectures", None) or [])]
    if archs and all(a.endswith(_NON_CAUSAL_HEADS) for a in archs):
        return f"saved as {', '.join(archs)} (model_type {model_type!r}), not a causal LM head"
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        return (
            f"a {model_type!r} encoder with is_decoder=false (bidirectional attention: every token sees "
            "the ones after it)"
        )
    return None


def nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the model's parameters that hold a NaN or an infinity (``[]`` when all are finite).

    Shared (tied) parameters are named once, by their first name in ``model.named_parameters()``.
    Loading does not refuse such checkpoints: a run that diverged saved them, and selection marks
    them as diverged.
    """
    import torch

    out: list[str] = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if (p.is_floating_point() or p.is_complex()) and not bool(torch.isfinite(p).all()):
                out.append(name)
    return out
