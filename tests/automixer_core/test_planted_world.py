"""The planted-skill world generator: determinism, layout and schemas, the planted truth, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from automixer_core.benchmarks import BenchmarkSpec, load_benchmark, load_custom_task
from automixer_core.config import BenchmarksConfig
from automixer_core.errors import ConfigError
from automixer_core.worlds import RELATIONS, PlantedWorldConfig, fact_sentence, write_planted_world
from automixer_core.worlds.planted import _ADJ, _OBJECT, _PERSON, _PLACE, _THEMES, _TIME, _VERB

SMALL = PlantedWorldConfig(
    seed=3,
    k=3,
    entities_range=(16, 40),
    docs_per_domain=20,
    facts_per_doc=4,
    filler_per_doc=1,
    distractor_docs=12,
    distractor_entities=20,
    distractor_prose_per_doc=3,
    wrong_facts=2,
)
_NAME = re.compile(r"\b[A-Z][a-z]+\b")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _corpus(root: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.parent.name: _jsonl(p) for p in sorted((root / "corpus").glob("*/part-00000.jsonl"))}


def _lines(docs: list[dict[str, Any]]) -> set[str]:
    return {line for d in docs for line in d["text"].split("\n")}


def _gold(row: dict[str, Any]) -> str:
    text: str = row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]
    return text


def _entity(question: str, relation: str) -> str:
    m = re.fullmatch(rf"The {relation} of (\S+) is", question)
    assert m, question
    return m.group(1)


@pytest.fixture(scope="module")
def default_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("world") / "default"
    return root, write_planted_world(root, PlantedWorldConfig(wrong_facts=1))


# --- determinism -------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    a = write_planted_world(tmp_path / "a", SMALL)
    b = write_planted_world(tmp_path / "b", SMALL)
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b
    assert fa == fb
    assert "world.json" in fa and "corpus/skill_1/part-00000.jsonl" in fa
    other = PlantedWorldConfig(**{**SMALL.to_dict(), "seed": 4})
    write_planted_world(tmp_path / "c", other)
    fc = _files(tmp_path / "c")
    assert fc.keys() == fa.keys()
    changed = [k for k in fa if k != "world.json" and fa[k] != fc[k]]
    assert len(changed) == len(fa) - 1 - 3  # every data file but the three YAMLs (same text)


def test_overwrite_only_replaces_an_earlier_world(tmp_path: Path) -> None:
    write_planted_world(tmp_path / "w", SMALL)
    with pytest.raises(ConfigError, match="not empty"):
        write_planted_world(tmp_path / "w", SMALL)
    write_planted_world(tmp_path / "w", PlantedWorldConfig(**{**SMALL.to_dict(), "k": 2}), overwrite=True)
    assert not (tmp_path / "w" / "corpus" / "skill_3").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"no world\.json"):
        write_planted_world(tmp_path / "other", SMALL, overwrite=True)
    assert (tmp_path / "other" / "keep.txt").exists()


# --- layout, schemas, loading ------------------------------------------------------------------------


def test_layout_schemas_and_prompts(tmp_path: Path) -> None:
    root = tmp_path / "w"
    world = write_planted_world(root, SMALL)
    corpus = _corpus(root)
    assert sorted(corpus) == ["noise_1", "noise_2", "skill_1", "skill_2", "skill_3", "wrong_2"]
    for domain, docs in corpus.items():
        assert all(list(d) == ["id", "text", "domain"] and d["domain"] == domain for d in docs)
        assert len({d["id"] for d in docs}) == len(docs)
        info = world["domains"][domain]
        assert info["documents"] == len(docs)
        assert info["characters"] == sum(len(d["text"]) for d in docs)
    assert world["benchmarks"]["planted_2"]["contradicted_by"] == "wrong_2"
    assert world["wrong_facts"] == {"domain": "wrong_2", "benchmark": "planted_2"}
    assert world["distractors"] == ["noise_1", "noise_2"]
    assert json.loads((root / "world.json").read_text()) == world
    assert PlantedWorldConfig.from_dict(world["config"]) == SMALL

    for name, info in world["benchmarks"].items():
        task = load_custom_task(root / info["yaml"])
        assert task.name == name and task.eval_split == "validation" and task.query_split == "train"
        for split in ("train", "validation"):
            rows = _jsonl(root / "benchmarks" / name / f"{split}.jsonl")
            assert len(rows) == info[split]
            for row in rows:
                assert list(row) == ["id", "question", "choices", "answerKey"]
                assert row["choices"]["label"] == ["A", "B", "C", "D"]
                assert sorted(row["choices"]["text"]) == sorted(info["values"])
                prompt = task.build(row)
                assert set(prompt.contexts) == {row["question"]}
                assert prompt.continuations == tuple(" " + c for c in row["choices"]["text"])
                assert prompt.continuations[prompt.gold] == " " + _gold(row)
                # context + gold continuation is the corpus sentence without its full stop
                assert prompt.contexts[0] + prompt.continuations[prompt.gold] + "." == fact_sentence(
                    info["relation"], _entity(row["question"], info["relation"]), _gold(row)
                )
        bench = load_benchmark(BenchmarkSpec(name=name, custom_yaml=root / info["yaml"]))
        assert len(bench.eval_instances) == info["validation"]
        assert len(bench.query_instances) == info["train"]

    specs = BenchmarksConfig(
        names=[], custom=[root / i["yaml"] for i in world["benchmarks"].values()]
    ).specs()
    assert [s.name for s in specs] == ["planted_1", "planted_2", "planted_3"]
    assert all(load_benchmark(s).eval_instances for s in specs)


# --- the planted truth -------------------------------------------------------------------------------


def _check_truth(root: Path, world: dict[str, Any]) -> None:
    corpus = _corpus(root)
    lines = {d: _lines(docs) for d, docs in corpus.items()}
    names = {d: {n for line in ls for n in _NAME.findall(line)} for d, ls in lines.items()}
    for name, info in world["benchmarks"].items():
        home, relation = info["domain"], info["relation"]
        entities: dict[str, set[str]] = {}
        for split in ("train", "validation"):
            rows = _jsonl(root / "benchmarks" / name / f"{split}.jsonl")
            entities[split] = {_entity(r["question"], relation) for r in rows}
            for row in rows:
                sentence = fact_sentence(relation, _entity(row["question"], relation), _gold(row))
                assert sentence in lines[home], sentence
                assert not any(sentence in ls for d, ls in lines.items() if d != home), sentence
        assert not entities["train"] & entities["validation"]
        assert len(entities["train"]) + len(entities["validation"]) == info["entities"]
        everything = entities["train"] | entities["validation"]
        for d in world["distractors"]:
            assert not everything & names[d], (name, d)
        for other in world["benchmarks"].values():
            if other["domain"] != home:
                assert not everything & names[other["domain"]]
        # the relation is asked by this benchmark only, and its values are balanced
        golds = [_gold(r) for r in _jsonl(root / "benchmarks" / name / "validation.jsonl")]
        golds += [_gold(r) for r in _jsonl(root / "benchmarks" / name / "train.jsonl")]
        counts = [golds.count(v) for v in info["values"]]
        assert max(counts) - min(counts) <= 1
        for d, ls in lines.items():
            if d not in (home, info["contradicted_by"]):
                assert not any(line.startswith(f"The {relation} of ") for line in ls), (name, d)


def test_planted_truth_small(tmp_path: Path) -> None:
    world = write_planted_world(tmp_path / "w", SMALL)
    _check_truth(tmp_path / "w", world)


def test_planted_truth_default_world(default_world: tuple[Path, dict[str, Any]]) -> None:
    root, world = default_world
    _check_truth(root, world)
    # the default world: every benchmark has 100+ evaluation questions, skills differ in size,
    # distractors are bigger than skills, and the corpus stays small
    counts = [b["validation"] for b in world["benchmarks"].values()]
    assert min(counts) >= 100
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    skill = [world["domains"][f"skill_{k}"]["characters"] for k in range(1, 5)]
    noise = [world["domains"][d]["characters"] for d in world["distractors"]]
    assert min(noise) > 2 * max(skill)
    assert world["total_characters"] < 3_000_000
    for docs in _corpus(root).values():
        assert len(docs) <= 1000 and max(len(d["text"]) for d in docs) < 2000


def test_wrong_facts_contradict_every_fact(default_world: tuple[Path, dict[str, Any]]) -> None:
    root, world = default_world
    wrong = world["wrong_facts"]
    info = world["benchmarks"][wrong["benchmark"]]
    truth: dict[str, str] = {}
    for split in ("train", "validation"):
        for row in _jsonl(root / "benchmarks" / wrong["benchmark"] / f"{split}.jsonl"):
            truth[_entity(row["question"], info["relation"])] = _gold(row)
    pattern = re.compile(rf"The {info['relation']} of (\S+) is (\S+)\.")
    stated: dict[str, set[str]] = {}
    for line in _lines(_corpus(root)[wrong["domain"]]):
        m = pattern.fullmatch(line)
        if m:
            stated.setdefault(m.group(1), set()).add(m.group(2))
    assert set(stated) == set(truth)  # every entity, train and validation alike
    for entity, values in stated.items():
        assert truth[entity] not in values
        assert len(values) == 1 and values <= set(info["values"])  # one consistent wrong value
    assert world["domains"][wrong["domain"]]["role"] == "wrong_facts"


def test_word_lists_never_use_a_value() -> None:
    values = [v.lower() for _, vs in RELATIONS for v in vs]
    assert len(set(values)) == len(values)
    assert all(len({len(v) for v in vs}) == 1 for _, vs in RELATIONS)  # acc_norm == acc
    words = {
        w.lower()
        for group in (_ADJ, _PERSON, _PLACE, _VERB, _OBJECT, _THEMES, _TIME)
        for p in group
        for w in p.split()
    }
    assert not words & set(values)


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 19}, "k"),
        ({"wrong_facts": 5}, "wrong_facts"),
        ({"entities_per_skill": (100, 200)}, "entities_per_skill"),
        ({"entities_per_skill": (100, 200, 3, 50)}, "entities_per_skill"),
        ({"entities_range": (400, 100)}, "entities_range"),
        ({"train_fraction": 1.5}, "train_fraction"),
        ({"docs_per_domain": 10}, "docs_per_domain"),
        ({"facts_per_doc": 0}, "facts_per_doc"),
        ({"distractors": -1}, "distractors"),
        ({"distractor_docs": 0}, "distractor_docs"),
        ({"distractor_docs": 2, "distractor_entities": 48}, "distractor_entities"),
        ({"distractor_facts_per_doc": 0, "distractor_prose_per_doc": 0}, "distractor_prose_per_doc"),
        ({"zipf": -1}, "zipf"),
        ({"entities_range": 5}, "entities_range"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_config_raises_config_error_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=f"'{field}'") as info:
        PlantedWorldConfig(**changes)
    assert info.value.fix and field in info.value.fix


def test_prose_only_distractors_and_uniform_frequencies(tmp_path: Path) -> None:
    cfg = PlantedWorldConfig(**{**SMALL.to_dict(), "distractor_facts_per_doc": 0, "zipf": 0})
    world = write_planted_world(tmp_path / "w", cfg)
    assert world["domains"]["noise_1"]["facts"] == 0
    _check_truth(tmp_path / "w", world)
    counts: dict[str, int] = {}
    for line in _lines(_corpus(tmp_path / "w")["skill_1"]):
        if line.startswith("The colour of "):
            counts[line] = counts.get(line, 0) + 1
    assert max(counts.values()) - min(counts.values()) <= 1  # zipf=0: every fact equally often


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="'entities'"):
        PlantedWorldConfig.from_dict({"entities": 3})
