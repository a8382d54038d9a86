"""Loading one checkpoint (local, any fsspec URI, or ``hf://org/name@rev``) as a causal LM and its
tokenizer, with the checks that name what is wrong with a broken or unsupported checkpoint."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from automixer_core.checkpoints.hub import HUB_SCHEME, _hub_error, parse_hub_uri
from automixer_core.checkpoints.refs import CheckpointRef, _missing_reason
from automixer_core.errors import CheckpointError, ModelError, StorageError
from automixer_core.store import Store

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


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
