"""The influence engine on architectures whose weights are not all nn.Linear modules it can hook.

Mamba (transformers 5.x) reads ``mixer.dt_proj.weight`` directly (``dt_proj.weight @ x``) instead of
calling the module, so a hook on ``dt_proj`` never fires: selecting it (``all_linear`` does) must
fail the batch with a ModelError that names the module and a selection that works, never give
scores that silently lack its share. Mixtral keeps its experts as fused 3-D parameters, which
``all_linear`` leaves out: the recorded parameter fraction must say so (the publish step notes an
``all_linear`` selection below ``ALL_LINEAR_MIN_FRACTION``: ``coverage_note``).

Tiny random models built from configs; ``embed_head`` on both is checked against the per-document
autograd oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from automixer_core.errors import ModelError
from automixer_core.influence import (
    InfluenceConfig,
    QueryVectors,
    build_query_vectors,
    score_documents,
    select_blocks,
)
from automixer_core.influence.params import coverage_note, selected_parameter_fraction
from tests.automixer_core.influence import oracle as O
from tests.automixer_core.influence.conftest import VOCAB, WINDOW, make_docs, make_queries
from tests.automixer_core.influence.test_oracle import TOL, assert_cols, rel

transformers = pytest.importorskip("transformers")
if not all(hasattr(transformers, c) for c in ("MambaForCausalLM", "MixtralForCausalLM")):
    pytest.skip("this transformers has no MambaForCausalLM/MixtralForCausalLM", allow_module_level=True)

DT_PROJ = ["backbone.layers.0.mixer.dt_proj", "backbone.layers.1.mixer.dt_proj"]


def _spread(model: nn.Module) -> nn.Module:
    """Random init is tiny; a larger spread of the matrices gives less degenerate gradients."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                m.weight.normal_(0, 0.2)
    return model.eval()


def make_mamba(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    cfg = transformers.MambaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        state_size=4,
        num_hidden_layers=2,
        expand=2,
        conv_kernel=4,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return _spread(transformers.MambaForCausalLM(cfg))


def make_mixtral(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    cfg = transformers.MixtralConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    model: Any = _spread(transformers.MixtralForCausalLM(cfg))
    with torch.no_grad():
        for layer in model.model.layers:
            for p in layer.mlp.experts.parameters():
                p.normal_(0, 0.2)
    return model


def check_embed_head_against_oracle(model: nn.Module, names: list[str]) -> None:
    """embed_head grad_dot and cosine scores (padded batches) equal the float64 autograd oracle."""
    assert [b.name for b in select_blocks(model, "embed_head")] == names
    docs, queries = make_docs(), make_queries()
    keep = [i for i, d in enumerate(docs) if len(d) >= 2]
    m64: Any = O.double_copy(model)
    if getattr(m64.config, "_experts_implementation", None) not in (None, "eager"):
        m64.config._experts_implementation = "eager"  # grouped_mm has no float64 kernel
    g = O.doc_grads(m64, names, [docs[i] for i in keep], WINDOW)
    v = torch.stack([O.query_grad(m64, names, ex, WINDOW) for ex in queries.values()])
    for est in ("grad_dot", "cosine"):
        cfg = InfluenceConfig(estimator=est, layers="embed_head", max_length=WINDOW, batch_size=3)
        qv = build_query_vectors(model, queries, cfg)
        w = v if est == "grad_dot" else v / v.norm(dim=1, keepdim=True)
        assert rel(torch.stack([O.flat(qv.blocks, names, k) for k in range(qv.k)]), w) <= TOL, est
        res = score_documents(model, [(f"d{i}", d) for i, d in enumerate(docs)], qv, cfg)
        want = g @ w.T
        if est == "cosine":
            assert res.grad_norm is not None and rel(res.grad_norm[keep], g.norm(dim=1)) <= TOL
            want = want / g.norm(dim=1)[:, None]
        assert np.abs(res.scores[keep]).min() > 0  # not silently zero
        assert_cols(res.scores[keep], want)


# --------------------------------------------------------------------------------------------
# Mamba


def test_mamba_dt_proj_is_read_directly_and_fails_naming_it() -> None:
    model = make_mamba()
    mixer = model.backbone.layers[0].mixer
    assert type(mixer.dt_proj) is nn.Linear  # selectable, yet the model never calls it
    # all_linear includes every dt_proj; so does a pattern, alone or next to a module that does run
    for layers in ("all_linear", ["backbone.layers.*.mixer.dt_proj"], [DT_PROJ[0], "lm_head"]):
        names = [b.name for b in select_blocks(model, layers)]
        assert f"{DT_PROJ[0]}.weight" in names
        cfg = InfluenceConfig(estimator="grad_dot", layers=layers, max_length=WINDOW, batch_size=4)
        with pytest.raises(ModelError) as e:
            build_query_vectors(model, {"arc": make_queries()["arc"]}, cfg)
        msg = str(e.value)
        found, fix = msg.split("Expected")[0], msg.split("Fix:")[1]
        want = DT_PROJ if layers != [DT_PROJ[0], "lm_head"] else DT_PROJ[:1]
        assert all(f"'{n}'" in found for n in want) and "did not run in the forward pass" in found
        assert "in_proj" not in found and "lm_head" not in found  # only the modules that did not run
        assert "embed_head" in fix and "leave these modules out" in fix
        if layers == "all_linear":  # the modules that did run are offered as the alternative
            offered = fix.split("such as ")[1].split(",")[0].split("/")
            assert {"in_proj", "x_proj", "out_proj", "lm_head"} <= set(offered) and "dt_proj" not in offered

    # scoring checks every batch too: with query vectors of the right shapes, still no silent zeros
    layers = ["backbone.layers.*.mixer.dt_proj"]
    cfg = InfluenceConfig(estimator="grad_dot", layers=layers, max_length=WINDOW, batch_size=4)
    blocks = {f"{n}.weight": torch.ones(1, 64, 2) for n in DT_PROJ}
    qv = QueryVectors(names=["arc"], blocks=blocks, estimator="grad_dot", layers=layers)
    with pytest.raises(ModelError, match=r"'backbone\.layers\.0\.mixer\.dt_proj'.*did not run"):
        score_documents(model, [(str(i), d) for i, d in enumerate(make_docs())], qv, cfg)


def test_mamba_modules_it_calls_score_and_embed_head_matches_oracle() -> None:
    model = make_mamba()
    assert model.lm_head.weight is model.backbone.embeddings.weight  # tied: one block, two uses
    check_embed_head_against_oracle(model, ["backbone.embeddings.weight"])
    # the selection the error suggests works: the projections Mamba calls as modules
    layers = ["backbone.layers.*.mixer.in_proj", "backbone.layers.*.mixer.out_proj"]
    cfg = InfluenceConfig(estimator="grad_dot", layers=layers, max_length=WINDOW, batch_size=4)
    qv = build_query_vectors(model, make_queries(), cfg)
    res = score_documents(model, [(str(i), d) for i, d in enumerate(make_docs())], qv, cfg)
    assert np.abs(res.scores[1:]).min() > 0


def test_mamba_parameter_fractions() -> None:
    model = make_mamba()
    total = sum(p.numel() for p in model.parameters())  # the tied matrix counted once
    emb = model.backbone.embeddings.weight.numel()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))  # lm_head = emb
    embed_head = selected_parameter_fraction(model, "embed_head")
    all_linear = selected_parameter_fraction(model, "all_linear")
    assert embed_head == pytest.approx(emb / total)
    assert all_linear == pytest.approx(linear / total)
    # measured on this tiny model: about 0.167 and 0.918 (dt_proj included, though it cannot be scored)
    assert 0.1 < embed_head < 0.25 and all_linear > 0.85


# --------------------------------------------------------------------------------------------
# Mixtral


def test_mixtral_all_linear_misses_the_fused_experts_and_says_so() -> None:
    model = make_mixtral()
    total = sum(p.numel() for p in model.parameters())
    experts = sum(p.numel() for layer in model.model.layers for p in layer.mlp.experts.parameters())
    assert experts > total / 2  # the experts hold most of the model, as in the real Mixtral
    blocks = select_blocks(model, "all_linear")
    names = [b.name for b in blocks]
    assert names and not any(".mlp." in n for n in names)  # neither experts nor router are nn.Linear
    assert names[-1] == "lm_head.weight"
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    fraction = selected_parameter_fraction(model, "all_linear")
    assert fraction == pytest.approx(linear / total)
    note = coverage_note("all_linear", fraction)  # what publish writes into the mixture's notes
    assert note is not None and f"covers only {fraction:.0%}" in note and "fused experts" in note
    assert coverage_note("embed_head", fraction) is None  # only all_linear promises to cover the model
    assert coverage_note("all_linear", 0.9183) is None  # Mamba's all_linear share: no note
    # the fraction travels with the query vectors and the scores (publish reads it from there)
    cfg = InfluenceConfig(estimator="grad_dot", layers="all_linear", max_length=WINDOW, batch_size=4)
    qv = build_query_vectors(model, {"arc": make_queries()["arc"]}, cfg)
    assert float(qv.metadata["parameter_fraction"]) == pytest.approx(fraction)
    res = score_documents(model, [("d0", make_docs()[3])], qv, cfg)
    assert float(res.metadata["parameter_fraction"]) == pytest.approx(fraction)
    assert np.abs(res.scores).min() > 0
    # nor can a pattern select the experts: their module is no leaf, and its weights are 3-D
    with pytest.raises(ModelError, match="match no module"):
        select_blocks(model, ["model.layers.0.mlp.experts"])


def test_mixtral_embed_head_matches_oracle() -> None:
    model = make_mixtral()
    check_embed_head_against_oracle(model, ["model.embed_tokens.weight", "lm_head.weight"])
