"""Adam preconditioning (LESS-like, DESIGN §1.3): w_b ← w_b / (√v̂ + ε).

v̂ = exp_avg_sq / (1 − β₂^step) is the bias-corrected second moment the checkpoint's
AdamW/Adam optimizer saved; ε and β₂ come from the parameter's group. This is exactly the
denominator of torch's Adam update, so ⟨g, w/(√v̂+ε)⟩ = ⟨g/(√v̂+ε), w⟩ scores the document's
Adam-preconditioned gradient against the query.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from automixer_core.errors import InfluenceError
from automixer_core.influence.params import ParamBlock

OptimizerState = Mapping[str, Any] | str | os.PathLike[str]


def load_optimizer_state(state: OptimizerState) -> Mapping[str, Any]:
    """A ``torch.optim`` state dict, given as one or as the path of ``torch.save(opt.state_dict())``."""
    if isinstance(state, str | os.PathLike):
        try:
            loaded = torch.load(os.fspath(state), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InfluenceError(
                f"optimizer state file {os.fspath(state)!r} does not exist",
                expected="the checkpoint's optimizer.pt (torch.save(optimizer.state_dict()))",
                fix="point to the checkpoint's optimizer.pt or turn influence.adam off",
            ) from None
        state = loaded
    if not isinstance(state, Mapping) or "state" not in state or "param_groups" not in state:
        raise InfluenceError(
            f"optimizer state of type {type(state).__name__} has no 'state'/'param_groups'",
            expected="an optimizer state_dict()",
        )
    return state


def adam_denominators(
    model: nn.Module,
    blocks: list[ParamBlock],
    state: OptimizerState,
    param_names: Sequence[str] | None = None,
) -> list[torch.Tensor]:
    """Per block, √v̂ + ε in the block's internal layout (float32, CPU).

    Args:
        model: the checkpoint's model.
        blocks: the selected blocks.
        state: the optimizer state dict (or its path).
        param_names: the parameter name of each optimizer index, in optimizer order. Default:
            the optimizer was built over ``model.parameters()`` in that order (one group or
            several groups concatenated in that order).

    Raises:
        InfluenceError: the state lacks a selected parameter's second moment or step, or does not
            line up with the model's parameters.
    """
    sd = load_optimizer_state(state)
    groups = list(sd["param_groups"])
    group_of: dict[int, Mapping[str, Any]] = {int(i): g for g in groups for i in g["params"]}
    if param_names is None:
        names = [n for n, _ in model.named_parameters()]
        if len(group_of) != len(names):
            raise InfluenceError(
                f"optimizer state covers {len(group_of)} parameters, the model has {len(names)}",
                expected="an optimizer built over model.parameters() in order",
                fix="pass optimizer_param_names (the parameter name of each optimizer index)",
            )
    else:
        names = list(param_names)
    index = {n: i for i, n in enumerate(names)}
    per_param = sd["state"]
    out: list[torch.Tensor] = []
    for blk in blocks:
        i = index.get(blk.name)
        st = None if i is None else per_param.get(i, per_param.get(str(i)))
        if i is None or st is None or "exp_avg_sq" not in st or "step" not in st or i not in group_of:
            raise InfluenceError(
                f"optimizer state has no Adam second moment for parameter {blk.name!r}",
                expected="an Adam/AdamW state with exp_avg_sq and step for every selected parameter",
                fix="use the checkpoint's optimizer.pt from an Adam-family optimizer or turn influence.adam off",
            )
        v = st["exp_avg_sq"].detach().to("cpu", torch.float64)
        if tuple(v.shape) != blk.shape:
            raise InfluenceError(
                f"optimizer exp_avg_sq for {blk.name!r} has shape {tuple(v.shape)}, the parameter {blk.shape}",
                expected="optimizer indices in model.parameters() order",
                fix="pass optimizer_param_names",
            )
        step = float(st["step"])
        if step <= 0:
            raise InfluenceError(
                f"optimizer step for {blk.name!r} is {step}", expected="a positive step count"
            )
        beta2 = float(group_of[i]["betas"][1])
        eps = float(group_of[i]["eps"])
        denom = (v / (1.0 - beta2**step)).sqrt() + eps
        out.append(blk.to_internal(denom.float()))
    return out
