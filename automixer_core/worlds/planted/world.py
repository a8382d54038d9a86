"""The planted-skill world assembled: :func:`write_planted_world` draws the entities, facts,
splits and documents from seeded generators and writes the corpus, the benchmarks and
``world.json``.

World file (``world.json``)
---------------------------
``format``; ``config`` (:meth:`PlantedWorldConfig.to_dict`); ``benchmarks``: per benchmark its
``domain`` (the one that teaches it), ``relation``, ``values``, entity and question counts,
``yaml`` path and ``contradicted_by`` (the wrong-facts domain or null); ``distractors`` (the noise
domain names); ``wrong_facts`` (null or ``{"domain", "benchmark"}``); ``domains``: per domain its
``role`` (skill / distractor / wrong_facts), ``benchmark`` (for skill and wrong_facts),
``documents``, ``characters`` and ``facts`` (fact sentences stated); ``total_characters``. Files
are written in a fixed key order with ``\\n`` line ends, and every random choice comes from a
generator seeded by (seed, purpose): the same config gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import partial
from pathlib import Path
from typing import Any

from automixer_core.worlds.planted.config import PlantedWorldConfig
from automixer_core.worlds.planted.files import _benchmark_yaml, _prepare_out, _question_rows, _write_jsonl
from automixer_core.worlds.planted.text import (
    _THEMES,
    _WRONG_THEME,
    RELATIONS,
    _fact_documents,
    _filler,
    _make_names,
    _prose,
)

FORMAT = "automixer-planted-world/1"


def _rng(seed: int, *parts: object) -> random.Random:
    """An independent generator per (seed, purpose): stable across Python versions and processes."""
    key = "|".join(str(p) for p in (seed, *parts)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def write_planted_world(
    out: str | Path, config: PlantedWorldConfig | None = None, *, overwrite: bool = False
) -> dict[str, Any]:
    """Write a planted-skill world under ``out`` and return its ``world.json`` content.

    Args:
        out: a new or empty folder (created with its parents).
        config: the world to build (default: :class:`PlantedWorldConfig` ()).
        overwrite: replace an earlier planted world in ``out`` (only its ``corpus/``,
            ``benchmarks/`` and ``world.json`` are removed).

    Raises:
        ConfigError: the config is impossible, or ``out`` is not empty (and not an earlier world
            with ``overwrite=True``).
    """
    cfg = config if config is not None else PlantedWorldConfig()
    cfg.validate()
    root = Path(out)
    _prepare_out(root, overwrite)

    counts = cfg.entity_counts()
    taken: set[str] = set()
    name_rng = _rng(cfg.seed, "names")
    corpus: dict[str, list[str]] = {}
    domains: dict[str, dict[str, Any]] = {}
    benchmarks: dict[str, dict[str, Any]] = {}
    wrong_domain = f"wrong_{cfg.wrong_facts}" if cfg.wrong_facts is not None else None

    for k in range(1, cfg.k + 1):
        relation, values = RELATIONS[k - 1]
        domain, bench = f"skill_{k}", f"planted_{k}"
        n = counts[k - 1]
        entities = _make_names(name_rng, n, taken)
        rng = _rng(cfg.seed, "skill", k)
        gold = [values[i % len(values)] for i in range(n)]
        rng.shuffle(gold)
        order = list(range(n))
        rng.shuffle(order)
        n_train = min(n - 1, max(1, round(n * cfg.train_fraction)))
        train_ids, val_ids = sorted(order[:n_train]), sorted(order[n_train:])
        facts = [(relation, entities[i], gold[i]) for i in range(n)]
        ranks = list(range(1, n + 1))
        rng.shuffle(ranks)  # frequency rank of each entity, independent of its split
        weights = [r ** -float(cfg.zipf) for r in ranks]
        theme = _THEMES[(k - 1) % len(_THEMES)] + ("" if k <= len(_THEMES) else f" {k}")
        corpus[domain] = _fact_documents(
            rng,
            facts,
            weights,
            cfg.docs_per_domain,
            cfg.facts_per_doc,
            partial(_filler, theme=theme),
            cfg.filler_per_doc,
        )
        qrng = _rng(cfg.seed, "questions", k)
        splits = {
            "train": _question_rows(
                qrng, bench, "train", relation, values, [(entities[i], gold[i]) for i in train_ids]
            ),
            "validation": _question_rows(
                qrng, bench, "validation", relation, values, [(entities[i], gold[i]) for i in val_ids]
            ),
        }
        for split, rows in splits.items():
            _write_jsonl(root / "benchmarks" / bench / f"{split}.jsonl", rows)
        yaml_path = root / "benchmarks" / f"{bench}.yaml"
        yaml_path.write_text(_benchmark_yaml(bench), encoding="utf-8", newline="\n")
        benchmarks[bench] = {
            "domain": domain,
            "relation": relation,
            "values": list(values),
            "entities": n,
            "train": len(train_ids),
            "validation": len(val_ids),
            "yaml": f"benchmarks/{bench}.yaml",
            "contradicted_by": wrong_domain if cfg.wrong_facts == k else None,
        }
        domains[domain] = {"role": "skill", "benchmark": bench}

        if cfg.wrong_facts == k and wrong_domain is not None:
            wrng = _rng(cfg.seed, "wrong", k)
            wrong_facts = [
                (relation, entities[i], wrng.choice([v for v in values if v != gold[i]])) for i in range(n)
            ]
            corpus[wrong_domain] = _fact_documents(
                wrng,
                wrong_facts,
                weights,
                cfg.docs_per_domain,
                cfg.facts_per_doc,
                partial(_filler, theme=_WRONG_THEME),
                cfg.filler_per_doc,
            )
            domains[wrong_domain] = {"role": "wrong_facts", "benchmark": bench}

    noise_names = []
    for j in range(1, cfg.distractors + 1):
        domain = f"noise_{j}"
        noise_names.append(domain)
        first = cfg.k + (j - 1) * cfg.distractor_relations
        relations = RELATIONS[first : first + cfg.distractor_relations]
        names = _make_names(name_rng, cfg.distractor_entities, taken)
        rng = _rng(cfg.seed, "noise", j)
        # one relation per entity (taken in turn), so a distractor fact is learnable like a skill fact
        facts = [
            (relations[i % len(relations)][0], e, rng.choice(relations[i % len(relations)][1]))
            for i, e in enumerate(names)
            if cfg.distractor_facts_per_doc
        ]
        corpus[domain] = _fact_documents(
            rng,
            facts,
            [1.0] * len(facts),
            cfg.distractor_docs,
            cfg.distractor_facts_per_doc,
            partial(_prose, names=names),
            cfg.distractor_prose_per_doc,
        )
        domains[domain] = {"role": "distractor", "relations": [rel for rel, _ in relations]}

    for domain, docs in corpus.items():
        rows = [{"id": f"{domain}-{i:05d}", "text": text, "domain": domain} for i, text in enumerate(docs)]
        _write_jsonl(root / "corpus" / domain / "part-00000.jsonl", rows)
        domains[domain].update(
            documents=len(docs),
            characters=sum(len(t) for t in docs),
            facts=len(docs)
            * (cfg.distractor_facts_per_doc if domain.startswith("noise_") else cfg.facts_per_doc),
        )

    world: dict[str, Any] = {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "benchmarks": benchmarks,
        "distractors": noise_names,
        "wrong_facts": (
            {"domain": wrong_domain, "benchmark": f"planted_{cfg.wrong_facts}"} if wrong_domain else None
        ),
        "domains": {d: domains[d] for d in sorted(domains)},
        "total_characters": sum(domains[d]["characters"] for d in domains),
    }
    (root / "world.json").write_text(json.dumps(world, indent=2) + "\n", encoding="utf-8", newline="\n")
    return world
