"""Benchmark registry, prompt construction, row errors, custom YAML, sampling and digests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from automixer_core.benchmarks import (
    PAPER_BENCHMARKS,
    BenchmarkSpec,
    MultipleChoiceInstance,
    benchmark_data_digest,
    canonical_name,
    get_task,
    list_tasks,
    load_benchmark,
    load_custom_task,
    load_instances,
    read_jsonl_split,
    register_custom,
    select_rows,
)
from automixer_core.benchmarks.tasks import hellaswag_preprocess
from automixer_core.errors import BenchmarkError


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _first(shared_data: Path, name: str, split: str = "validation") -> MultipleChoiceInstance:
    spec = BenchmarkSpec(name=name, data_dir=shared_data)
    inst = load_instances(spec, split)[0]
    assert inst.doc_id == 0
    return inst


# --------------------------------------------------------------------------------------------
# registry


def test_registry_names_and_aliases() -> None:
    assert set(PAPER_BENCHMARKS) < set(list_tasks())
    assert "commonsense_qa" in list_tasks()
    assert canonical_name("siqa") == "social_i_qa"
    assert canonical_name("social_iqa") == "social_i_qa"
    assert canonical_name(" ARC_Easy ") == "arc_easy"
    assert get_task("siqa").lm_eval_task == "social_iqa"
    with pytest.raises(BenchmarkError, match="Unknown benchmark 'arc_medium'"):
        get_task("arc_medium")


def test_every_builtin_names_an_lm_eval_yaml_that_exists() -> None:
    import lm_eval

    root = Path(lm_eval.__file__).parent / "tasks"
    for name in list_tasks():
        task = get_task(name)
        if task.lm_eval_yaml is not None:
            assert (root / task.lm_eval_yaml).is_file(), task.lm_eval_yaml


def test_spec_requires_exactly_one_location(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no data location"):
        BenchmarkSpec(name="piqa")
    with pytest.raises(ValidationError, match="data_dir and path"):
        BenchmarkSpec(name="piqa", data_dir=tmp_path, path=tmp_path)
    with pytest.raises(ValidationError, match="eval_limit"):
        BenchmarkSpec(name="piqa", data_dir=tmp_path, eval_limit=0)


# --------------------------------------------------------------------------------------------
# prompts, against rows of the real files (expectations written by hand from lm-eval's YAMLs)


@pytest.mark.data
def test_arc_easy_prompt(shared_data: Path) -> None:
    inst = _first(shared_data, "arc_easy")
    q = "Question: Which technology was developed most recently?\nAnswer:"
    assert inst.contexts == (q,) * 4
    assert inst.continuations == (" cellular telephone", " television", " refrigerator", " airplane")
    assert inst.gold == 0
    assert inst.choice_lengths == (18, 10, 12, 8)


@pytest.mark.data
def test_arc_challenge_prompt(shared_data: Path) -> None:
    inst = _first(shared_data, "arc_challenge")
    assert inst.contexts[0].startswith("Question: Juan and LaKeisha roll a few objects down a ramp.")
    assert inst.contexts[0].endswith("repeat their investigation?\nAnswer:")
    assert inst.continuations[3] == " Record the details of the investigation."
    assert inst.gold == 3


@pytest.mark.data
def test_boolq_prompt_maps_boolean_answer(shared_data: Path) -> None:
    inst = _first(shared_data, "boolq")
    assert inst.contexts[0].startswith("All biomass goes through at least some of these steps:")
    assert inst.contexts[0].endswith("\nQuestion: does ethanol take more energy make that produces?\nAnswer:")
    assert inst.continuations == (" no", " yes")
    assert inst.choice_lengths == (2, 3)
    assert inst.gold == 0  # answer: false
    task = get_task("boolq")
    row = {"passage": "P", "question": "q", "answer": True}
    assert task.instance(row, 0).gold == 1
    assert task.instance({"passage": "P", "question": "q", "label": 0}, 0).gold == 0  # super_glue schema


@pytest.mark.data
def test_piqa_prompt(shared_data: Path) -> None:
    inst = _first(shared_data, "piqa")
    assert inst.contexts[0] == "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:"
    assert inst.continuations[0].startswith(
        " Provide the guinea pig with a cage full of a few inches of bedding made of ripped paper"
    )
    assert inst.n_choices == 2 and inst.gold == 0


@pytest.mark.data
def test_social_iqa_prompt(shared_data: Path) -> None:
    inst = _first(shared_data, "siqa")
    assert inst.contexts[0] == (
        "Q: Tracy didn't go home that evening and resisted Riley's attacks. What does Tracy need to do before this?\nA:"
    )
    assert inst.continuations == (" make a new plan", " Go home and see Riley", " Find somewhere to go")
    assert inst.gold == 2  # label "3"


@pytest.mark.data
def test_winogrande_partial_evaluation(shared_data: Path) -> None:
    inst = _first(shared_data, "winogrande")
    assert inst.contexts == (
        "Sarah was a much better surgeon than Maria so Sarah",
        "Sarah was a much better surgeon than Maria so Maria",
    )
    assert inst.continuations == (" always got the easier cases.",) * 2
    assert inst.gold == 1
    assert inst.choice_lengths == (len(inst.contexts[0]), len(inst.contexts[1]))
    assert not inst.shares_context


@pytest.mark.data
def test_openbookqa_prompt_is_the_bare_stem(shared_data: Path) -> None:
    inst = _first(shared_data, "openbookqa")
    assert inst.contexts[0] == (
        "Frilled sharks and angler fish live far beneath the surface of the ocean, which is why they are known as"
    )
    assert inst.continuations == (" Deep sea animals", " fish", " Long Sea Fish", " Far Sea Animals")
    assert inst.gold == 0
    row = {"question_stem": "s", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": " B"}
    assert get_task("openbookqa").instance(row, 0).gold == 1  # answerKey.lstrip()


@pytest.mark.data
def test_commonsense_qa_prompt_lists_options(shared_data: Path) -> None:
    inst = _first(shared_data, "commonsense_qa")
    assert inst.contexts[0] == (
        "Question: A revolving door is convenient for two direction travel, but it also serves as a security "
        "measure at a what?\nA. bank\nB. library\nC. department store\nD. mall\nE. new york\nAnswer:"
    )
    assert inst.continuations == (" A", " B", " C", " D", " E")
    assert inst.gold == 0


@pytest.mark.data
def test_hellaswag_prompt_from_real_row(shared_data: Path) -> None:
    inst = _first(shared_data, "hellaswag")
    assert inst.contexts[0] == "Roof shingle removal: A man is sitting on a roof. he"
    assert inst.continuations[3] == " starts pulling up roofing on a roof."
    assert inst.gold == 3


def test_hellaswag_preprocess_hub_row() -> None:
    row = {
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to plant a tree [title] Dig a hole.",
        "ctx_b": "THEN you",
        "endings": ["[step] water it  well.", " pick  a spot [substeps] first."],
        "label": "1",
    }
    inst = get_task("hellaswag").instance(row, 7)
    # "[title]" -> ". ", other tags dropped, one pass of double spaces, ctx_b.capitalize() lowercases the rest
    assert inst.contexts[0] == "Home and Garden: How to plant a tree. Dig a hole. Then you"
    assert inst.continuations == ("  water it well.", " pick a spot first.")
    assert inst.choice_lengths == (len(" water it well."), len("pick a spot first."))
    assert inst.gold == 1 and inst.doc_id == 7
    assert hellaswag_preprocess("  a [b] c  ") == "a c"


# --------------------------------------------------------------------------------------------
# malformed rows


def test_missing_field_names_file_row_and_field(tmp_path: Path) -> None:
    good = {"goal": "g", "sol1": "a", "sol2": "b", "label": 0}
    f = _write_jsonl(
        tmp_path / "piqa" / "validation.jsonl", [good, good, {"goal": "g", "sol1": "a", "label": 1}]
    )
    with pytest.raises(BenchmarkError) as err:
        load_benchmark(BenchmarkSpec(name="piqa", path=f.parent, query_split="validation", query_limit=1))
    msg = str(err.value)
    assert str(f) in msg and "row 2" in msg and "'sol2'" in msg and "missing" in msg


def test_bad_json_line_is_located(tmp_path: Path) -> None:
    good = json.dumps({"goal": "g", "sol1": "a", "sol2": "b", "label": 0})
    f = _write_jsonl(tmp_path / "validation.jsonl", [good, good, good[:-5]])
    with pytest.raises(BenchmarkError, match=r"row 2 \(line 3\) is not valid JSON"):
        read_jsonl_split(f)


def test_field_of_wrong_type_is_named(tmp_path: Path) -> None:
    arc = {"question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}
    bad_key = dict(arc, answerKey="C")
    _write_jsonl(tmp_path / "test.jsonl", [arc, bad_key])
    with pytest.raises(
        BenchmarkError, match=r"row 1 \(line 2\), field 'answerKey' 'C' is not one of the choice labels"
    ):
        load_instances(BenchmarkSpec(name="arc_easy", path=tmp_path), "test")
    g = _write_jsonl(tmp_path / "validation.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": "yes"}])
    with pytest.raises(
        BenchmarkError, match=r"field 'label' must be an integer or a digit string, got 'yes'"
    ):
        load_instances(BenchmarkSpec(name="piqa", path=g.parent), "validation")
    h = _write_jsonl(tmp_path / "boolq.jsonl", [{"passage": "p", "question": "q", "answer": "true"}])
    with pytest.raises(BenchmarkError, match="field 'answer' must be a JSON boolean"):
        load_instances(BenchmarkSpec(name="boolq", path=h.parent), "boolq")


def test_winogrande_without_blank(tmp_path: Path) -> None:
    f = _write_jsonl(
        tmp_path / "validation.jsonl",
        [{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}],
    )
    with pytest.raises(BenchmarkError, match="field 'sentence' has no blank"):
        load_instances(BenchmarkSpec(name="winogrande", path=f.parent))


def test_missing_split_file_lists_what_is_there(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}])
    with pytest.raises(BenchmarkError, match=r"validation.jsonl does not exist.*train.jsonl"):
        load_instances(BenchmarkSpec(name="piqa", path=tmp_path))


# --------------------------------------------------------------------------------------------
# splits, sampling, digests


def test_select_rows_is_seeded_sorted_and_excludes() -> None:
    a = select_rows(100, 10, seed=1, salt="x")
    assert a == select_rows(100, 10, seed=1, salt="x")
    assert a == sorted(a) and len(set(a)) == 10
    assert a != select_rows(100, 10, seed=2, salt="x")
    assert select_rows(5, None, seed=0) == [0, 1, 2, 3, 4]
    assert select_rows(5, 99, seed=0, exclude=[1, 3]) == [0, 2, 4]
    assert not set(select_rows(100, 50, seed=3, exclude=a)) & set(a)


@pytest.mark.data
def test_eval_and_query_splits_are_chosen_separately(shared_data: Path) -> None:
    spec = BenchmarkSpec(name="hellaswag", data_dir=shared_data, eval_limit=30, query_limit=20, seed=5)
    b = load_benchmark(spec)
    assert (b.eval_split, b.query_split) == ("validation", "train")
    assert len(b.eval_instances) == 30 and len(b.query_instances) == 20
    assert b.sources["train"].endswith("hellaswag/train.jsonl")
    again = load_benchmark(spec)
    assert [i.doc_id for i in again.eval_instances] == [i.doc_id for i in b.eval_instances]
    assert again.digest == b.digest and again.data_digest == b.data_digest
    other = load_benchmark(spec.model_copy(update={"seed": 6}))
    assert [i.doc_id for i in other.eval_instances] != [i.doc_id for i in b.eval_instances]
    assert other.data_digest == b.data_digest and other.digest != b.digest
    arc = load_benchmark(BenchmarkSpec(name="arc_easy", data_dir=shared_data, eval_limit=5))
    assert (arc.eval_split, arc.query_split) == ("test", "validation")
    assert len(arc.query_instances) == 100  # query_limit None: the whole other split


@pytest.mark.data
def test_same_split_holds_query_rows_out(shared_data: Path) -> None:
    b = load_benchmark(BenchmarkSpec(name="boolq", data_dir=shared_data, eval_limit=500, query_limit=40))
    assert b.eval_split == b.query_split == "validation"
    q = {i.doc_id for i in b.query_instances}
    e = {i.doc_id for i in b.eval_instances}
    assert len(q) == 40 and len(e) == 500 and not q & e
    default = load_benchmark(BenchmarkSpec(name="boolq", data_dir=shared_data))
    assert len(default.query_instances) == 100
    assert len(default.eval_instances) == 3270 - 100


def test_digest_is_content_addressed(tmp_path: Path) -> None:
    rows = [{"goal": f"g{i}", "sol1": "a", "sol2": "b", "label": i % 2} for i in range(10)]
    _write_jsonl(tmp_path / "a" / "validation.jsonl", rows)
    _write_jsonl(tmp_path / "a" / "train.jsonl", rows[:4])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    spec_a = BenchmarkSpec(name="piqa", path=tmp_path / "a")
    spec_b = BenchmarkSpec(name="piqa", path=tmp_path / "b")
    da = load_benchmark(spec_a).data_digest
    assert da == load_benchmark(spec_b).data_digest == benchmark_data_digest(spec_a)
    rows[3]["sol1"] = "changed"
    _write_jsonl(tmp_path / "b" / "validation.jsonl", rows)
    assert benchmark_data_digest(spec_b) != da
    assert load_benchmark(spec_b).data_digest == benchmark_data_digest(spec_b)
    # the task is part of the digest: the same file read as another task differs
    assert benchmark_data_digest(spec_a) != benchmark_data_digest(
        BenchmarkSpec(name="piqa", path=tmp_path / "a", query_split="validation")
    )


def test_any_load_dataset_source(tmp_path: Path) -> None:
    """hf_dataset goes through datasets.load_dataset (here its json builder, offline)."""
    rows = [{"goal": f"g{i}", "sol1": "a", "sol2": "b", "label": i % 2} for i in range(6)]
    val = _write_jsonl(tmp_path / "v.jsonl", rows)
    train = _write_jsonl(tmp_path / "t.jsonl", rows[:3])
    spec = BenchmarkSpec(
        name="piqa",
        hf_dataset="json",
        hf_kwargs={"data_files": {"validation": str(val), "train": str(train)}},
    )
    b = load_benchmark(spec)
    assert b.sources == {"validation": "hf:json:validation", "train": "hf:json:train"}
    assert [i.contexts[0] for i in b.eval_instances] == [f"Question: g{i}\nAnswer:" for i in range(6)]
    assert len(b.query_instances) == 3 and b.data_digest == benchmark_data_digest(spec)
    with pytest.raises(ValidationError, match="hf_kwargs is set but hf_dataset is not"):
        BenchmarkSpec(name="piqa", path=tmp_path, hf_kwargs={"revision": "x"})


# --------------------------------------------------------------------------------------------
# custom YAML benchmarks


def _custom_files(tmp_path: Path, yaml_text: str) -> Path:
    rows = [
        {"q": "Is fire hot?", "opts": {"text": ["no", "yes"], "label": ["A", "B"]}, "key": "B", "n": 2},
        {"q": "Is ice hot?", "opts": {"text": ["no", "yes"], "label": ["A", "B"]}, "key": "A", "n": 1},
    ]
    _write_jsonl(tmp_path / "data" / "dev.jsonl", rows)
    _write_jsonl(tmp_path / "data" / "train.jsonl", rows[:1])
    y = tmp_path / "bench.yaml"
    y.write_text(yaml_text)
    return y


def test_custom_yaml_format_template(tmp_path: Path) -> None:
    y = _custom_files(
        tmp_path,
        """
name: tiny_truths
prompt: "Q: {q} [{opts.text[0]}/{opts.text[1]}] {{ok}}\\nA:"
choices: opts.text
label: key
choice_labels: opts.label
target_delimiter: " "
eval_split: dev
query_split: train
files: {dev: data/dev.jsonl, train: data/train.jsonl}
""",
    )
    b = load_benchmark(BenchmarkSpec(name="tiny_truths", custom_yaml=y))
    first = b.eval_instances[0]
    assert first.contexts == ("Q: Is fire hot? [no/yes] {ok}\nA:",) * 2
    assert first.continuations == (" no", " yes") and first.gold == 1
    assert b.eval_instances[1].gold == 0 and len(b.query_instances) == 1
    # an integer label with an offset, a literal choice list, jinja templates
    y2 = tmp_path / "b2.yaml"
    y2.write_text(
        'name: tiny_two\nprompt: "{{ q }}\\nAnswer:"\ntemplate: jinja\nchoices: ["No", "Yes"]\n'
        "label: n\nlabel_offset: 1\ntarget_delimiter: ':'\n"
    )
    inst = load_instances(BenchmarkSpec(name="tiny_two", custom_yaml=y2, path=tmp_path / "data"), "dev")
    assert inst[0].contexts[0] == "Is fire hot?\nAnswer:"
    assert inst[0].continuations == (":No", ":Yes") and inst[0].gold == 1 and inst[1].gold == 0
    # registered under its name, a plain spec finds it
    register_custom(y2)
    assert load_instances(BenchmarkSpec(name="tiny_two", path=tmp_path / "data"), "dev")[0] == inst[0]


def test_custom_yaml_errors(tmp_path: Path) -> None:
    y = _custom_files(
        tmp_path,
        "name: bad\nprompt: 'Q: {missing}'\nchoices: opts.text\nlabel: key\nchoice_labels: opts.label\n",
    )
    with pytest.raises(BenchmarkError, match=r"dev.jsonl: row 0 \(line 1\), field 'missing' is missing"):
        load_instances(BenchmarkSpec(name="bad", custom_yaml=y, path=tmp_path / "data"), "dev")
    y.write_text("name: bad\nprompt: 'Q'\nchoices: opts.text\n")
    with pytest.raises(BenchmarkError, match="field 'label' field required"):
        load_custom_task(y)
    y.write_text("name: piqa\nprompt: 'Q'\nchoices: [a, b]\nlabel: n\n")
    with pytest.raises(BenchmarkError, match="collides with a built-in"):
        register_custom(y)
    y.write_text("name: nofiles\nprompt: 'Q'\nchoices: [a, b]\nlabel: n\n")
    with pytest.raises(BenchmarkError, match="lists no file for split 'validation'"):
        load_instances(BenchmarkSpec(name="nofiles", custom_yaml=y))
