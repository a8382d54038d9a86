"""Built-in task definitions: each turns one dataset row into a :class:`MultipleChoiceInstance`.

Every definition reproduces the default zero-shot task of lm-evaluation-harness (the YAML and
``utils.py`` shipped in the ``lm-eval`` wheel under ``lm_eval/tasks/``): the same ``doc_to_text``,
``doc_to_choice``, ``doc_to_target``, target delimiter (``" "``) and preprocessing. lm-eval builds a
zero-shot request as ``(doc_to_text(doc), target_delimiter + choice)``; for tasks whose
``doc_to_text`` returns an int (WinoGrande) the choices become the contexts and the continuation
is ``target_delimiter + doc_to_target(doc)``.

Rows follow the schema of each benchmark's public Hugging Face dataset, with the differences of
our local copies handled (BoolQ's boolean ``answer`` instead of the integer ``label`` of
``super_glue/boolq``; Social IQa's ``"1"``/``"2"``/``"3"`` labels).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from automixer_core.benchmarks.instances import MultipleChoiceInstance

TARGET_DELIMITER = " "
"""lm-eval's default ``target_delimiter`` (none of the tasks here overrides it)."""


class RowError(ValueError):
    """A row lacks a field or holds a value the task cannot use (wrapped into BenchmarkError by the loader)."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field_name = field_name
        self.problem = problem
        super().__init__(f"field {field_name!r} {problem}")


@dataclass(frozen=True)
class Prompt:
    """What a task makes of one row, before it gets a ``doc_id``.

    Attributes:
        contexts: one context per choice.
        continuations: one continuation per choice (delimiter included).
        gold: index of the correct choice.
        choice_lengths: characters of lm-eval's ``doc_to_choice`` strings (for ``acc_norm``).
    """

    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int
    choice_lengths: tuple[int, ...]


RowBuilder = Callable[[Mapping[str, Any]], Prompt]


@dataclass(frozen=True)
class TaskDefinition:
    """How one benchmark's rows become questions, and where its data usually is.

    Attributes:
        name: canonical name (also the folder name under ``<data_dir>/benchmarks/``).
        build: row -> :class:`Prompt`; raises :class:`RowError` on a malformed row.
        eval_split: default split to evaluate on.
        query_split: default split to take influence query examples from.
        fields: fields a row must carry (documentation and early checks).
        lm_eval_task: the task name in lm-evaluation-harness (``None`` for custom tasks).
        lm_eval_yaml: path of lm-eval's task YAML relative to ``lm_eval/tasks/``.
        version: bumped whenever the prompt construction changes (part of the data digest).
        description: one line for listings.
        aliases: other names that resolve to this task (``siqa`` for ``social_i_qa``).
        data_files: ``(split, path)`` pairs where the task's data lives when the spec names no
            location (custom benchmarks whose YAML lists its files).
    """

    name: str
    build: RowBuilder
    eval_split: str
    query_split: str
    fields: tuple[str, ...]
    lm_eval_task: str | None = None
    lm_eval_yaml: str | None = None
    version: str = "1"
    description: str = ""
    aliases: tuple[str, ...] = field(default=())
    data_files: tuple[tuple[str, str], ...] = field(default=())

    def instance(self, row: Mapping[str, Any], doc_id: int) -> MultipleChoiceInstance:
        """Build the question for ``row`` (``doc_id`` = its row number). Raises :class:`RowError`."""
        p = self.build(row)
        return MultipleChoiceInstance(
            doc_id=doc_id,
            contexts=p.contexts,
            continuations=p.continuations,
            gold=p.gold,
            choice_lengths=p.choice_lengths,
        )


# ---------------------------------------------------------------------------------------------
# field access with errors that name the field


def get_str(row: Mapping[str, Any], name: str) -> str:
    """``row[name]`` as a string; raises :class:`RowError` when missing, null or not a string."""
    if name not in row or row[name] is None:
        raise RowError(name, "is missing or null")
    value = row[name]
    if not isinstance(value, str):
        raise RowError(name, f"must be a string, got {type(value).__name__} {value!r}")
    return value


def get_str_list(value: Any, name: str, *, min_len: int = 1) -> list[str]:
    """``value`` as a list of strings of at least ``min_len`` items, else :class:`RowError`."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise RowError(name, f"must be a list of strings, got {type(value).__name__}")
    items = list(value)
    if len(items) < min_len:
        raise RowError(name, f"must have at least {min_len} items, got {len(items)}")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise RowError(name, f"item {i} must be a string, got {type(item).__name__} {item!r}")
    return items


def get_int_label(row: Mapping[str, Any], name: str) -> int:
    """An integer label that may be stored as an int or a digit string (``"3"``)."""
    if name not in row or row[name] is None:
        raise RowError(name, "is missing or null")
    value = row[name]
    if isinstance(value, bool):
        raise RowError(name, f"must be an integer or a digit string, got the boolean {value}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise RowError(name, f"must be an integer or a digit string, got {value!r}")


def _choices_struct(row: Mapping[str, Any], name: str = "choices") -> tuple[list[str], list[str]]:
    """The ``{"text": [...], "label": [...]}`` struct of ARC, OpenBookQA and CommonsenseQA."""
    if name not in row or row[name] is None:
        raise RowError(name, "is missing or null")
    value = row[name]
    if not isinstance(value, Mapping):
        raise RowError(
            name, f'must be an object {{"text": [...], "label": [...]}}, got {type(value).__name__}'
        )
    texts = get_str_list(value.get("text"), f"{name}.text")
    labels = get_str_list(value.get("label"), f"{name}.label")
    if len(texts) != len(labels):
        raise RowError(name, f"has {len(texts)} texts but {len(labels)} labels")
    return texts, labels


def _simple(context: str, choices: Sequence[str], gold: int, *, gold_field: str) -> Prompt:
    """The usual multiple-choice request set: one context, ``" " + choice`` continuations."""
    if not 0 <= gold < len(choices):
        raise RowError(gold_field, f"points to choice {gold}, but there are {len(choices)} choices")
    return Prompt(
        contexts=tuple(context for _ in choices),
        continuations=tuple(TARGET_DELIMITER + c for c in choices),
        gold=gold,
        choice_lengths=tuple(len(c) for c in choices),
    )


# ---------------------------------------------------------------------------------------------
# the tasks (lm_eval/tasks/<dir>/<yaml> named in each registry entry)


def build_arc(row: Mapping[str, Any]) -> Prompt:
    """ARC (easy and challenge): ``"Question: {{question}}\\nAnswer:"``, gold = label index of answerKey."""
    question = get_str(row, "question")
    texts, labels = _choices_struct(row)
    answer = get_str(row, "answerKey")
    if answer not in labels:
        raise RowError("answerKey", f"{answer!r} is not one of the choice labels {labels}")
    return _simple(f"Question: {question}\nAnswer:", texts, labels.index(answer), gold_field="answerKey")


def build_boolq(row: Mapping[str, Any]) -> Prompt:
    """BoolQ (super_glue): ``"{{passage}}\\nQuestion: {{question}}?\\nAnswer:"``, choices no/yes.

    lm-eval reads the integer ``label`` of super_glue; the google/boolq rows (ours) carry the
    boolean ``answer`` instead, mapped True -> 1 ("yes"), False -> 0 ("no").
    """
    passage = get_str(row, "passage")
    question = get_str(row, "question")
    if row.get("label") is not None:
        gold = get_int_label(row, "label")
    else:
        if "answer" not in row or row["answer"] is None:
            raise RowError("answer", "is missing or null (and there is no integer 'label' either)")
        answer = row["answer"]
        if not isinstance(answer, bool):
            raise RowError("answer", f"must be a JSON boolean, got {type(answer).__name__} {answer!r}")
        gold = int(answer)
    return _simple(f"{passage}\nQuestion: {question}?\nAnswer:", ["no", "yes"], gold, gold_field="label")


def hellaswag_preprocess(text: str) -> str:
    """HellaSwag text cleanup as lm-eval does it: strip, ``" [title]"`` -> ``". "``, drop ``[...]`` tags, one pass of double spaces."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def build_hellaswag(row: Mapping[str, Any]) -> Prompt:
    """HellaSwag: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), endings preprocessed."""
    activity = get_str(row, "activity_label")
    ctx_a = get_str(row, "ctx_a")
    ctx_b = get_str(row, "ctx_b")
    endings = get_str_list(row.get("endings"), "endings")
    gold = get_int_label(row, "label")
    query = hellaswag_preprocess(activity + ": " + ctx_a + " " + ctx_b.capitalize())
    choices = [hellaswag_preprocess(e) for e in endings]
    return _simple(query, choices, gold, gold_field="label")


def build_piqa(row: Mapping[str, Any]) -> Prompt:
    """PIQA: ``"Question: {{goal}}\\nAnswer:"``, choices [sol1, sol2], gold = label."""
    goal = get_str(row, "goal")
    sols = [get_str(row, "sol1"), get_str(row, "sol2")]
    return _simple(f"Question: {goal}\nAnswer:", sols, get_int_label(row, "label"), gold_field="label")


def build_social_iqa(row: Mapping[str, Any]) -> Prompt:
    """Social IQa: ``"Q: {{context}} {{question}}\\nA:"``, choices answerA/B/C, gold = int(label) - 1."""
    context = get_str(row, "context")
    question = get_str(row, "question")
    answers = [get_str(row, k) for k in ("answerA", "answerB", "answerC")]
    label = get_int_label(row, "label")
    if label not in (1, 2, 3):
        raise RowError("label", f"must be 1, 2 or 3, got {row['label']!r}")
    return _simple(f"Q: {context} {question}\nA:", answers, label - 1, gold_field="label")


def build_winogrande(row: Mapping[str, Any]) -> Prompt:
    """WinoGrande, lm-eval's partial evaluation: the contexts vary, the continuation is shared.

    context_i = sentence up to the blank ``_`` with option i filled in; continuation =
    ``" " + sentence after the blank, stripped``. acc_norm divides by the length of context_i
    (lm-eval's ``doc_to_choice``), which is what lm-eval does for multiple-input tasks.
    """
    sentence = get_str(row, "sentence")
    options = [get_str(row, "option1"), get_str(row, "option2")]
    if "answer" not in row or row["answer"] is None:
        raise RowError("answer", "is missing or null")
    answer = str(row["answer"])
    if answer not in ("1", "2"):
        raise RowError("answer", f"must be '1' or '2', got {row['answer']!r}")
    if "_" not in sentence:
        raise RowError("sentence", "has no blank '_'")
    idx = sentence.index("_")
    target = sentence[idx + 1 :].strip()
    contexts = tuple(sentence[:idx] + opt for opt in options)
    return Prompt(
        contexts=contexts,
        continuations=tuple(TARGET_DELIMITER + target for _ in options),
        gold=int(answer) - 1,
        choice_lengths=tuple(len(c) for c in contexts),
    )


def build_openbookqa(row: Mapping[str, Any]) -> Prompt:
    """OpenBookQA (main): context = question_stem as is, gold = label index of answerKey.lstrip()."""
    stem = get_str(row, "question_stem")
    texts, labels = _choices_struct(row)
    answer = get_str(row, "answerKey").lstrip()
    if answer not in labels:
        raise RowError("answerKey", f"{answer!r} is not one of the choice labels {labels}")
    return _simple(stem, texts, labels.index(answer), gold_field="answerKey")


_CSQA_LETTERS = ("A", "B", "C", "D", "E")


def build_commonsense_qa(row: Mapping[str, Any]) -> Prompt:
    """CommonsenseQA: the five options listed in the prompt, choices are the letters A-E."""
    question = get_str(row, "question").strip()
    texts, _labels = _choices_struct(row)
    if len(texts) < 5:
        raise RowError("choices.text", f"must have 5 options, got {len(texts)}")
    answer = get_str(row, "answerKey")
    if answer not in _CSQA_LETTERS:
        raise RowError("answerKey", f"must be one of A-E, got {answer!r}")
    lines = [f"Question: {question}"]
    lines += [f"{letter}. {text}" for letter, text in zip(_CSQA_LETTERS, texts[:5], strict=True)]
    lines.append("Answer:")
    return _simple("\n".join(lines), list(_CSQA_LETTERS), _CSQA_LETTERS.index(answer), gold_field="answerKey")


BUILTIN_TASKS: tuple[TaskDefinition, ...] = (
    TaskDefinition(
        name="arc_easy",
        build=build_arc,
        eval_split="test",
        query_split="validation",
        fields=("question", "choices", "answerKey"),
        lm_eval_task="arc_easy",
        lm_eval_yaml="arc/arc_easy.yaml",
        description="AI2 ARC, easy set (grade-school science, 4 options)",
    ),
    TaskDefinition(
        name="arc_challenge",
        build=build_arc,
        eval_split="test",
        query_split="validation",
        fields=("question", "choices", "answerKey"),
        lm_eval_task="arc_challenge",
        lm_eval_yaml="arc/arc_challenge.yaml",
        description="AI2 ARC, challenge set",
    ),
    TaskDefinition(
        name="boolq",
        build=build_boolq,
        eval_split="validation",
        query_split="validation",
        fields=("passage", "question", "answer"),
        lm_eval_task="boolq",
        lm_eval_yaml="super_glue/boolq/default.yaml",
        description="BoolQ yes/no questions about a passage",
    ),
    TaskDefinition(
        name="hellaswag",
        build=build_hellaswag,
        eval_split="validation",
        query_split="train",
        fields=("activity_label", "ctx_a", "ctx_b", "endings", "label"),
        lm_eval_task="hellaswag",
        lm_eval_yaml="hellaswag/hellaswag.yaml",
        description="HellaSwag sentence completion",
    ),
    TaskDefinition(
        name="piqa",
        build=build_piqa,
        eval_split="validation",
        query_split="train",
        fields=("goal", "sol1", "sol2", "label"),
        lm_eval_task="piqa",
        lm_eval_yaml="piqa/piqa.yaml",
        description="PIQA physical commonsense, 2 solutions",
    ),
    TaskDefinition(
        name="social_i_qa",
        build=build_social_iqa,
        eval_split="validation",
        query_split="train",
        fields=("context", "question", "answerA", "answerB", "answerC", "label"),
        lm_eval_task="social_iqa",
        lm_eval_yaml="siqa/siqa.yaml",
        description="Social IQa social commonsense, 3 answers",
        aliases=("siqa", "social_iqa"),
    ),
    TaskDefinition(
        name="winogrande",
        build=build_winogrande,
        eval_split="validation",
        query_split="train",
        fields=("sentence", "option1", "option2", "answer"),
        lm_eval_task="winogrande",
        lm_eval_yaml="winogrande/default.yaml",
        description="WinoGrande (xl) pronoun resolution, partial evaluation",
    ),
    TaskDefinition(
        name="openbookqa",
        build=build_openbookqa,
        eval_split="test",
        query_split="validation",
        fields=("question_stem", "choices", "answerKey"),
        lm_eval_task="openbookqa",
        lm_eval_yaml="openbookqa/openbookqa.yaml",
        description="OpenBookQA (main) elementary science, 4 options",
        aliases=("obqa",),
    ),
    TaskDefinition(
        name="commonsense_qa",
        build=build_commonsense_qa,
        eval_split="validation",
        query_split="train",
        fields=("question", "choices", "answerKey"),
        lm_eval_task="commonsense_qa",
        lm_eval_yaml="commonsense_qa/default.yaml",
        description="CommonsenseQA, options listed in the prompt, letters scored",
        aliases=("csqa",),
    ),
)
