"""A corpus with a wrong-facts domain, end to end: a proxy trained on the right facts, then a remix
of a corpus that also states wrong ones. No wrong-facts document may reach a weighted group, and
mixture.json counts what each residual rule moved.

The world (a planted-skill world, ``automixer_core.worlds``): two skill domains, one distractor
domain, and ``wrong_1`` (the entities of planted_1 with a wrong value each). The proxy never sees
``wrong_1`` (a run that learned the right facts); it learns both skills within 360 steps, after
which the wrong facts have a joint density about 30 times the size of any other domain's, and
negative.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from automixer.demo import demo_run_config
from automixer_core.config import RunConfig
from automixer_core.mixture import Mixture, membership_from_parquet
from automixer_core.proxy import train_proxy
from automixer_core.proxy.config import demo_proxy_config
from automixer_core.store import Store
from automixer_core.worlds import PlantedWorldConfig, write_planted_world
from flows.remix import remix_flow

pytestmark = pytest.mark.slow

DOCS = 40


def _remix(raw: dict[str, Any], residual_domains: str) -> tuple[Mixture, Any]:
    cfg = RunConfig.model_validate(
        {**raw, "aggregation": {**raw["aggregation"], "residual_domains": residual_domains}}
    )
    out = remix_flow(cfg)
    store = Store(cfg.store)
    mixture = Mixture.from_json(store.read_text(f"mixtures/{out['id']}/mixture.json"))
    membership = membership_from_parquet(store.read_bytes(f"mixtures/{out['id']}/membership.parquet"))
    return mixture, membership.set_index("doc_id")


def test_no_wrong_fact_reaches_a_weighted_group(prefect_api: None, tmp_path: Path) -> None:
    world = write_planted_world(
        tmp_path / "world",
        PlantedWorldConfig.small_wrong_facts(DOCS),
    )
    wrong = world["wrong_facts"]["domain"]
    shutil.copytree(tmp_path / "world" / "corpus", tmp_path / "seen", ignore=shutil.ignore_patterns(wrong))
    train_proxy(
        demo_proxy_config(steps=360, save_every=180, save_optimizer=False),
        str(tmp_path / "seen"),
        str(tmp_path / "proxy"),
        progress=False,
    )
    raw = demo_run_config(tmp_path / "world", tmp_path, world=world, limit=100, docs_per_domain=DOCS)
    raw["influence"]["hessian_samples"] = 32
    raw["aggregation"] = {"bootstrap": 100}
    raw["publish"] = {"exports": ["hf_interleave"]}

    mixture, membership = _remix(raw, "relative")  # the default
    assert {a.benchmark: a.score for a in mixture.provenance.artifacts} == {
        "planted_1": 1.0,
        "planted_2": 1.0,
    }
    density = {d.name: d.density for d in mixture.domains or []}
    others = max(abs(v) for d, v in density.items() if d != wrong)
    assert density[wrong] < -10 * others  # the wrong facts stand out (about 30 times, measured)
    weighted = {g.name for g in mixture.groups if g.weight > 0}
    in_groups = membership[(membership["domain"] == wrong) & membership["group"].isin(weighted)]
    assert in_groups.empty, in_groups
    assert (membership.loc[membership["domain"] == wrong, "group"] == "residual").all()

    # mixture.json counts every move once, under the first rule, by domain.
    moves = {m.rule: m for m in mixture.residual_moves}
    assert sum(m.documents for m in moves.values()) == int((membership["group"] == "residual").sum())
    for m in moves.values():
        assert sum(m.by_domain.values()) == m.documents
    assert sum(m.by_domain.get(wrong, 0) for m in moves.values()) == DOCS
    # The correct domains are not moved as domains: their documents stay in the groups the
    # document rules give them (skill_2 sits near 0, a skill the checkpoint already knows).
    skills = {b["domain"] for b in world["benchmarks"].values()}
    assert "negative_domain" in moves and not skills & set(moves["negative_domain"].by_domain)

    # The domain rule only moves documents to residual: every document it leaves in a weighted
    # group is in the group the document rules alone give it.
    alone, by_doc = _remix(raw, "off")
    kept = membership["group"] != "residual"
    assert (membership.loc[kept, "group"] == by_doc.loc[membership.index[kept], "group"]).all()
    assert "negative_domain" not in {m.rule for m in alone.residual_moves}
