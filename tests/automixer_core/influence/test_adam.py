"""Adam preconditioning from a real AdamW state: w = v / (√v̂ + ε), checked against AdamW's own update."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from automixer_core.errors import InfluenceError
from automixer_core.influence import InfluenceConfig, build_query_vectors, score_documents
from tests.automixer_core.influence.conftest import WINDOW, make_docs, make_model, make_queries


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        x = torch.randint(0, 96, (4, 12), generator=g)
        logits = model(input_ids=x).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("arch", ["llama_untied", "gpt2"])
def test_adam_preconditioning_matches_adamw_update(arch: str, tmp_path: Path) -> None:
    model = make_model(arch).train()
    lr = 1e-2
    # β1 = 0 makes AdamW's update exactly −lr · g / (√v̂ + ε) (no momentum, no weight decay)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.0, 0.95), eps=1e-6, weight_decay=0.0)
    _train(model, opt, 3)
    model.eval()
    queries = {"arc": make_queries()["arc"]}
    layers = "all_linear"
    plain = build_query_vectors(
        model, queries, InfluenceConfig(estimator="grad_dot", layers=layers, max_length=WINDOW)
    )
    before = copy.deepcopy(model)
    # one more AdamW step whose gradient is the query vector v itself
    named = dict(model.named_parameters())
    opt.zero_grad(set_to_none=True)
    for name, v in plain.blocks.items():
        named[name].grad = v[0].clone()
    opt.step()
    path = tmp_path / "optimizer.pt"
    torch.save(opt.state_dict(), path)
    cfg = InfluenceConfig(estimator="grad_dot", layers=layers, max_length=WINDOW, adam=True)
    qv = build_query_vectors(before, queries, cfg, optimizer_state=path)
    before_named = dict(before.named_parameters())
    for name, w in qv.blocks.items():
        want = (before_named[name].detach() - named[name].detach()) / lr  # = v / (√v̂ + ε)
        err = float((w[0] - want).norm() / want.norm())
        assert err <= 1e-4, (name, err)
    assert qv.adam and qv.metadata  # provenance carried
    # the dict form works the same, and scoring with the adam config runs
    qv2 = build_query_vectors(before, queries, cfg, optimizer_state=opt.state_dict())
    assert all(torch.equal(qv2.blocks[n], qv.blocks[n]) for n in qv.blocks)
    res = score_documents(before, [(str(i), d) for i, d in enumerate(make_docs())], qv, cfg)
    assert res.scores.shape == (8, 1)


def test_adam_errors(tmp_path: Path) -> None:
    model = make_model("llama_untied")
    queries = {"arc": make_queries()["arc"]}
    cfg = InfluenceConfig(estimator="grad_dot", layers="embed_head", max_length=WINDOW, adam=True)
    with pytest.raises(InfluenceError, match="no optimizer state"):
        build_query_vectors(model, queries, cfg)
    with pytest.raises(InfluenceError, match="does not exist"):
        build_query_vectors(model, queries, cfg, optimizer_state=tmp_path / "missing.pt")
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _train(model.train(), sgd, 1)
    with pytest.raises(InfluenceError, match="no Adam second moment"):
        build_query_vectors(model, queries, cfg, optimizer_state=sgd.state_dict())
    adam = torch.optim.AdamW(list(model.parameters())[1:], lr=1e-3)  # one parameter short
    _train(model, adam, 1)
    with pytest.raises(InfluenceError, match="covers"):
        build_query_vectors(model, queries, cfg, optimizer_state=adam.state_dict())
    names = [n for n, _ in model.named_parameters()][1:]
    with pytest.raises(InfluenceError, match=r"model\.embed_tokens\.weight"):  # the embedding has no state
        build_query_vectors(
            model, queries, cfg, optimizer_state=adam.state_dict(), optimizer_param_names=names
        )
