"""Parameter selection: which weight matrices form P, and which modules use each of them.

A *block* is one parameter tensor of P (one "layer" l in DataInf's per-layer formulas). Its
*uses* are the modules whose forward reads it: one ``nn.Linear``/``Conv1D`` or one
``nn.Embedding``, or, for tied input/output embeddings, the embedding *and* the output head —
the gradient of the shared matrix is the sum of both contributions (DESIGN §1.3).

Only weights are selected; biases are not part of P (ours).

Internal layout: every block is handled as a matrix ``[d_out, d_in]`` for linear uses (so a
GPT-2 ``Conv1D`` weight ``[d_in, d_out]`` is transposed) and ``[V, d]`` for embeddings.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D  # GPT-2 style linear layer, weight [d_in, d_out]

from automixer_core.errors import ModelError


@dataclass
class Use:
    """One module reading a block's weight.

    Attributes:
        kind: ``linear`` (y = a Wᵀ, W internal [d_out, d_in]) or ``embedding`` (row gather).
        module_name: the module's qualified name in the model.
        module: the module itself (hooks are registered on it).
        transposed: the parameter is stored ``[d_in, d_out]`` (GPT-2 ``Conv1D``).
        padding_idx: embedding row that receives no gradient (``nn.Embedding.padding_idx``).
    """

    kind: Literal["linear", "embedding"]
    module_name: str
    module: nn.Module
    transposed: bool = False
    padding_idx: int | None = None


@dataclass
class ParamBlock:
    """One selected parameter tensor (a "layer" l of DataInf) and the modules using it."""

    name: str
    param: nn.Parameter
    uses: list[Use] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        """The parameter's own shape (as stored in the model and in query-vector files)."""
        return tuple(self.param.shape)

    @property
    def numel(self) -> int:
        """d_l, the number of entries of the block."""
        return int(self.param.numel())

    @property
    def transposed(self) -> bool:
        """Whether the internal layout is the transpose of the parameter layout."""
        return any(u.transposed for u in self.uses)

    @property
    def internal_shape(self) -> tuple[int, int]:
        """``[d_out, d_in]`` for linear blocks, ``[V, d]`` for embeddings."""
        rows, cols = self.shape
        return (cols, rows) if self.transposed else (rows, cols)

    def to_internal(self, t: torch.Tensor) -> torch.Tensor:
        """``[..., *shape]`` in parameter layout → ``[..., *internal_shape]`` (contiguous)."""
        return t.transpose(-1, -2).contiguous() if self.transposed else t.contiguous()

    def to_param(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_internal`."""
        return t.transpose(-1, -2).contiguous() if self.transposed else t.contiguous()


def _is_conv1d(m: nn.Module) -> bool:
    return type(m) is Conv1D


def _use_for(name: str, m: nn.Module) -> Use:
    """The use a supported module makes of its weight, or a ModelError naming its type."""
    if type(m) is nn.Linear:
        return Use("linear", name, m)
    if _is_conv1d(m):
        return Use("linear", name, m, transposed=True)
    if type(m) is nn.Embedding:
        if m.max_norm is not None or m.scale_grad_by_freq:
            raise ModelError(
                f"embedding {name!r} uses max_norm or scale_grad_by_freq",
                expected="a plain nn.Embedding (its gradient is then a scatter of the output gradients)",
                fix="select other layers (config influence.layers)",
            )
        return Use("embedding", name, m, padding_idx=m.padding_idx)
    raise ModelError(
        f"module {name!r} is a {type(m).__module__}.{type(m).__qualname__}, which the influence engine does not support",
        expected="nn.Linear, transformers Conv1D or nn.Embedding modules",
        fix="choose layer patterns that match only linear or embedding modules (config influence.layers)",
    )


def _named(model: nn.Module, target: object, what: str) -> tuple[str, nn.Module]:
    if not isinstance(target, nn.Module):
        raise ModelError(
            f"{type(model).__name__} has no {what}",
            expected="a causal LM whose get_input_embeddings()/get_output_embeddings() return modules",
            fix="use a transformers *ForCausalLM model (Llama, GPT-2, GPT-NeoX, Qwen2, Mistral, ...)",
        )
    for n, m in model.named_modules():
        if m is target:
            return n, m
    raise ModelError(f"{what} of {type(model).__name__} is not a submodule of the model")


def _match(patterns: list[str], name: str) -> bool:
    for p in patterns:
        if p.startswith("re:"):
            if re.fullmatch(p[3:], name):
                return True
        elif fnmatch.fnmatchcase(name, p):
            return True
    return False


def _linear_like(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) or _is_conv1d(m)


def select_blocks(model: nn.Module, layers: str | list[str]) -> list[ParamBlock]:
    """Resolve a layer selection to parameter blocks, in ``model.named_parameters()`` order.

    Args:
        model: a Hugging Face causal LM (or any module with get_input/output_embeddings).
        layers: ``embed_head``, ``all_linear`` or a list of module-name patterns.

    Returns:
        One block per selected weight tensor; a tied embedding/head matrix is one block with
        two uses.

    Raises:
        ModelError: a selected (or weight-sharing) module is of an unsupported type, or a
            pattern list matches no module.
    """
    get_in = getattr(model, "get_input_embeddings", None)
    get_out = getattr(model, "get_output_embeddings", None)
    chosen: list[tuple[str, nn.Module]] = []
    if layers == "embed_head":
        chosen = [
            _named(model, get_in() if callable(get_in) else None, "input embedding"),
            _named(model, get_out() if callable(get_out) else None, "output head"),
        ]
    elif layers == "all_linear":
        chosen = [(n, m) for n, m in model.named_modules() if _linear_like(m)]
        if not chosen:
            raise ModelError(
                f"{type(model).__name__} has no linear layers",
                expected="nn.Linear or transformers Conv1D modules",
                fix="select layers by name patterns instead",
            )
    elif isinstance(layers, list):
        leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
        chosen = [(n, m) for n, m in leaves if _match(layers, n) and any(True for _ in m.parameters(False))]
        if not chosen:
            raise ModelError(
                f"layer patterns {layers} match no module of {type(model).__name__}",
                expected="fnmatch patterns (or 're:' regular expressions) over module names",
                fix="list module names with model.named_modules() and adjust influence.layers",
            )
    else:
        raise ModelError(
            f"unknown layer selection {layers!r}", expected="'embed_head', 'all_linear' or a list of patterns"
        )

    selected: dict[int, nn.Parameter] = {}
    for name, m in chosen:
        _use_for(name, m)  # type check (raises ModelError naming the type)
        w = getattr(m, "weight", None)
        if not isinstance(w, nn.Parameter) or w.dim() != 2:
            raise ModelError(f"module {name!r} has no 2-D weight parameter")
        selected[id(w)] = w

    # every module reading a selected weight is a use of its block (tied weights: embedding + head)
    uses: dict[int, list[Use]] = {k: [] for k in selected}
    for name, m in model.named_modules():
        for p in m.parameters(recurse=False):
            if id(p) in uses:
                if getattr(m, "weight", None) is not p:
                    raise ModelError(
                        f"parameter of module {name!r} ({type(m).__name__}) is shared with a selected weight in an unsupported way"
                    )
                uses[id(p)].append(_use_for(name, m))

    blocks: list[ParamBlock] = []
    for pname, p in model.named_parameters():
        if id(p) in selected:
            blk = ParamBlock(pname, p, uses[id(p)])
            _check_uses(blk)
            blocks.append(blk)
    return blocks


def _check_uses(blk: ParamBlock) -> None:
    kinds = sorted(u.kind for u in blk.uses)
    ok = kinds in (["linear"], ["embedding"]) or (
        kinds == ["embedding", "linear"] and not any(u.transposed for u in blk.uses)
    )
    if not ok:
        names = ", ".join(f"{u.module_name} ({type(u.module).__name__})" for u in blk.uses)
        raise ModelError(
            f"parameter {blk.name!r} is used by {names}",
            expected="one linear or embedding module, or a tied input embedding + nn.Linear output head",
            fix="select other layers (config influence.layers)",
        )


def blocks_parameter_fraction(model: nn.Module, blocks: list[ParamBlock]) -> float:
    """The fraction of the model's parameter entries (each shared tensor counted once) in ``blocks``."""
    total = sum(int(p.numel()) for p in model.parameters())
    if total == 0:
        raise ModelError(f"{type(model).__name__} has no parameters", expected="a model with weights")
    return sum(b.numel for b in blocks) / total


def selected_parameter_fraction(model: nn.Module, layers: str | list[str]) -> float:
    """The fraction of the model's parameters (entries, each shared tensor counted once) that P covers.

    ``embed_head`` covers the token embedding and the output head (one matrix when tied);
    ``all_linear`` covers every linear weight (biases, norms and position embeddings are left out).

    Raises:
        ModelError: as :func:`select_blocks` for a selection that does not fit the model.
    """
    return blocks_parameter_fraction(model, select_blocks(model, layers))


#: Below this share of the parameters, an ``all_linear`` selection is flagged in the mixture's notes.
ALL_LINEAR_MIN_FRACTION = 0.5


def coverage_note(layers: str | list[str], fraction: float) -> str | None:
    """The mixture note for an ``all_linear`` selection that covers less than
    :data:`ALL_LINEAR_MIN_FRACTION` of the parameters (fused experts are not ``nn.Linear``), else None."""
    if layers != "all_linear" or fraction >= ALL_LINEAR_MIN_FRACTION:
        return None
    return (
        f"influence: layers all_linear covers only {fraction:.0%} of the model's parameters "
        "(modules that are not nn.Linear, such as fused experts, are left out); list module patterns "
        "under influence.layers to cover them"
    )
