"""Trainer formats for a published mixture (DESIGN §1 step 7).

A mixture's weights are *token shares* w_g (Σ w = 1). Each trainer weighs its sources in its own
unit, so every export converts with the group's mean document length L_g = T_g / D_g (tokens per
document, from the mixture):

- Hugging Face ``datasets.interleave_datasets(probabilities=...)`` draws one *example* (document)
  at a time from source g with probability p_g. A document of g carries L_g tokens on average, so
  the token share is p_g L_g / Σ p L; for it to equal w_g: **p_g = (w_g / L_g) / Σ_h (w_h / L_h)**.
- MosaicML Streaming ``Stream(proportion=...)``: the proportion of an epoch's *samples* drawn from
  the stream; one sample is one document, so the proportion is p_g as above.
- Megatron-LM ``--data-path w1 prefix1 w2 prefix2 ...`` (and ``--data-args-path`` files holding the
  same list): ``BlendedDataset`` normalises the weights and draws *samples* in those proportions,
  and every sample of a ``GPTDataset`` is a fixed-length window of ``seq_length`` tokens cut from
  the prefix's concatenated token stream, whatever the document boundaries. Samples are therefore
  equal-sized token chunks and **the weight is the token share w_g** itself.
- GPT-NeoX (Megatron-derived): ``train-data-paths`` / ``train-data-weights``, the same fixed-length
  samples, so again w_g — with ``weight-by-num-documents: false`` (that option would re-weight by
  document counts).
- OLMo-core ``SourceMixtureConfig(source_name, target_ratio, paths, max_repetition_ratio,
  max_source_fraction)`` inside ``SourceMixtureList(sources=[...])``: ``target_ratio`` is the
  global proportion of *tokens* from the source (ratios must sum to 1), so it is w_g. Field names
  follow OLMo-core's ``olmo_core/data/source_mixture.py`` (2025); older releases named the
  repetition field ``max_repetitions`` — rename it if your version wants that.

Groups whose weight is 0 are left out of every export (a zero-probability source would never be
exhausted under ``all_exhausted``, and OLMo-core rejects a ``target_ratio`` of 0). Paths are
parameters; the defaults are placeholders under ``root`` that show the expected layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from automixer_core.errors import ConfigError
from automixer_core.mixture import Mixture

FORMATS: tuple[str, ...] = ("hf_interleave", "megatron", "gpt_neox", "mosaic_streaming", "olmo_core")
DEFAULT_ROOT = "data/mixture"


def _active(mixture: Mixture) -> list[tuple[str, float, float]]:
    """(name, token share, mean doc tokens) of the groups with weight > 0, renormalised to sum 1."""
    rows = [(g.name, g.weight, g.mean_doc_tokens) for g in mixture.groups if g.weight > 0]
    total = sum(w for _, w, _ in rows)
    if not rows or total <= 0:
        raise ConfigError(
            f"Mixture {mixture.id!r} has no group with a positive weight", fix="re-run aggregation"
        )
    for name, _, length in rows:
        if length <= 0:
            raise ConfigError(
                f"Group {name!r} of mixture {mixture.id!r} has weight > 0 but mean_doc_tokens = {length}",
                expected="a positive mean document length for every weighted group",
                fix="re-run aggregation with token counts in the scores table",
            )
    return [(n, w / total, length) for n, w, length in rows]


def token_shares(mixture: Mixture) -> dict[str, float]:
    """Group → token share w_g (groups with weight > 0)."""
    return {n: w for n, w, _ in _active(mixture)}


def document_probabilities(mixture: Mixture) -> dict[str, float]:
    """Group → probability of drawing a document from it: p_g ∝ w_g / L_g (module docstring)."""
    rows = _active(mixture)
    per_doc = {n: w / length for n, w, length in rows}
    total = sum(per_doc.values())
    return {n: v / total for n, v in per_doc.items()}


def _paths(
    names: list[str], given: Mapping[str, Any] | None, default: Callable[[str], Any], what: str
) -> dict[str, Any]:
    given = dict(given or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(
            f"{what} given for unknown or zero-weight group(s) {unknown}",
            expected=f"keys among {names}",
            fix="use the group names of the mixture",
        )
    return {n: given.get(n, default(n)) for n in names}


# --- Hugging Face datasets -----------------------------------------------------------------------


def hf_interleave(
    mixture: Mixture,
    *,
    data_files: Mapping[str, str | list[str]] | None = None,
    root: str = DEFAULT_ROOT,
    seed: int = 0,
    stopping_strategy: str = "all_exhausted",
) -> dict[str, Any]:
    """Arguments for ``datasets.interleave_datasets`` (probabilities in documents).

    Use::

        cfg = json.loads(text)
        parts = [load_dataset("json", data_files=cfg["data_files"][g], split="train") for g in cfg["groups"]]
        mixed = interleave_datasets(parts, probabilities=cfg["probabilities"], seed=cfg["seed"],
                                    stopping_strategy=cfg["stopping_strategy"])
    """
    probs = document_probabilities(mixture)
    names = list(probs)
    files = _paths(names, data_files, lambda n: f"{root}/{n}/*.jsonl", "data_files")
    return {
        "format": "hf_interleave",
        "mixture_id": mixture.id,
        "unit": "documents",
        "groups": names,
        "probabilities": [probs[n] for n in names],
        "token_shares": [token_shares(mixture)[n] for n in names],
        "data_files": files,
        "seed": seed,
        "stopping_strategy": stopping_strategy,
    }


# --- Megatron-LM / GPT-NeoX ----------------------------------------------------------------------


def megatron_blend(
    mixture: Mixture, *, prefixes: Mapping[str, str] | None = None, root: str = DEFAULT_ROOT
) -> str:
    """The value of Megatron-LM's ``--data-path`` (``w1 prefix1 w2 prefix2 ...``), weights = token shares.

    Prefixes are the ``.bin``/``.idx`` paths without extension, as written by
    ``tools/preprocess_data.py`` (default placeholder ``{root}/{group}_text_document``).
    """
    shares = token_shares(mixture)
    pre = _paths(list(shares), prefixes, lambda n: f"{root}/{n}_text_document", "prefixes")
    return " ".join(f"{shares[n]!r} {pre[n]}" for n in shares)


def gpt_neox_blend(
    mixture: Mixture, *, prefixes: Mapping[str, str] | None = None, root: str = DEFAULT_ROOT
) -> dict[str, Any]:
    """The data keys of a GPT-NeoX config: weights = token shares, no re-weighting by documents."""
    shares = token_shares(mixture)
    pre = _paths(list(shares), prefixes, lambda n: f"{root}/{n}_text_document", "prefixes")
    return {
        "train-data-paths": [pre[n] for n in shares],
        "train-data-weights": [shares[n] for n in shares],
        "weight-by-num-documents": False,
    }


# --- MosaicML Streaming --------------------------------------------------------------------------


def mosaic_streams(
    mixture: Mixture,
    *,
    remotes: Mapping[str, str] | None = None,
    local_root: str = "/tmp/automixer-streams",
    remote_root: str = "s3://<bucket>/mds",
    split: str | None = None,
) -> dict[str, Any]:
    """``streams: {name: {remote, local, proportion}}`` with proportions in samples (documents).

    Pass to ``StreamingDataset(streams=[Stream(**s) for s in cfg["streams"].values()])`` or use it
    as the ``streams`` key of an llm-foundry ``train_loader.dataset``.
    """
    probs = document_probabilities(mixture)
    rem = _paths(list(probs), remotes, lambda n: f"{remote_root}/{n}", "remotes")
    streams: dict[str, dict[str, Any]] = {}
    for n, p in probs.items():
        entry: dict[str, Any] = {"remote": rem[n], "local": f"{local_root}/{n}", "proportion": p}
        if split is not None:
            entry["split"] = split
        streams[n] = entry
    return {"streams": streams}


# --- OLMo-core -----------------------------------------------------------------------------------


def olmo_core_mixture(
    mixture: Mixture,
    *,
    paths: Mapping[str, list[str]] | None = None,
    root: str = DEFAULT_ROOT,
    max_repetition_ratio: float = 1.0,
    max_source_fraction: float = 1.0,
) -> dict[str, Any]:
    """An OLMo-core ``SourceMixtureList``: ``{"sources": [{source_name, target_ratio, paths, ...}]}``.

    ``target_ratio`` is the token share. ``requested_tokens`` and ``global_batch_size`` belong to
    ``SourceMixtureDatasetConfig`` and are the trainer's to set.
    """
    shares = token_shares(mixture)
    src = _paths(list(shares), paths, lambda n: [f"{root}/{n}/*.npy"], "paths")
    return {
        "sources": [
            {
                "source_name": n,
                "target_ratio": shares[n],
                "paths": list(src[n]),
                "max_repetition_ratio": max_repetition_ratio,
                "max_source_fraction": max_source_fraction,
            }
            for n in shares
        ]
    }


# --- files ---------------------------------------------------------------------------------------


def folder_export_options(
    mixture: Mixture, fmt: str, root: str, files: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Options of :func:`write_export` that point ``fmt`` at one folder per group under ``root``, as
    ``automixer label`` writes them (``<root>/<group>/*.jsonl``): the jsonl files themselves where
    the format reads jsonl (``hf_interleave``; groups with weight 0 left out), else ``root`` in the
    placeholders of formats that read tokenized files (convert each group's folder first)."""
    if fmt == "hf_interleave":
        active = token_shares(mixture)
        return {"data_files": {g: list(f) for g, f in files.items() if g in active and f}}
    if fmt == "mosaic_streaming":
        return {"remote_root": root}
    return {"root": root}


def _yaml(header: str, obj: Any) -> bytes:
    body = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)
    return (header + body).encode()


def write_export(mixture: Mixture, fmt: str, **options: Any) -> tuple[str, bytes]:
    """``(filename, content)`` of the export ``fmt`` (one of :data:`FORMATS`).

    ``options`` go to the format's function (``data_files``, ``prefixes``, ``remotes``, ``paths``,
    ``root``, ...).
    """
    head = f"# AutoMixer mixture {mixture.id}: {{}}\n"
    if fmt == "hf_interleave":
        return "hf_interleave.json", (json.dumps(hf_interleave(mixture, **options), indent=2) + "\n").encode()
    if fmt == "megatron":
        return "megatron_data_blend.txt", (megatron_blend(mixture, **options) + "\n").encode()
    if fmt == "gpt_neox":
        return "gpt_neox_data.yml", _yaml(
            head.format("GPT-NeoX data keys; weights are token shares"), gpt_neox_blend(mixture, **options)
        )
    if fmt == "mosaic_streaming":
        return "mosaic_streams.yaml", _yaml(
            head.format("MosaicML Streaming streams; proportions are in samples (documents)"),
            mosaic_streams(mixture, **options),
        )
    if fmt == "olmo_core":
        return "olmo_core_source_mixture.yaml", _yaml(
            head.format("OLMo-core SourceMixtureList; target_ratio is the token share"),
            olmo_core_mixture(mixture, **options),
        )
    raise ConfigError(
        f"Unknown export format {fmt!r}", expected=f"one of {list(FORMATS)}", fix="pick a listed format"
    )
