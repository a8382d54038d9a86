"""Custom multiple-choice benchmarks described by a small YAML file.

Example (``my_bench.yaml``)::

    name: tiny_science
    prompt: "Question: {question}\\nAnswer:"   # {field}, {a.b}, {a[0]}; {{ and }} are literal braces
    choices: choices.text                      # a field holding the list of choices, or a list
    label: answerKey                           # field with the gold: index, digit string or choice
    choice_labels: choices.label               # optional: gold is looked up in this list
    label_offset: 0                            # subtracted from an integer gold (1 for 1-based)
    target_delimiter: " "
    eval_split: validation
    query_split: train
    files:                                     # optional; relative to the YAML file
      validation: data/validation.jsonl
      train: data/train.jsonl

With ``template: jinja`` the prompt is a Jinja template rendered like lm-evaluation-harness
renders its ``doc_to_text`` (``{{question}}``), so an lm-eval prompt can be copied as is.
Requests are built the lm-eval way: context = the rendered prompt, continuation =
``target_delimiter + choice``; ``acc_norm`` divides by the choice's length in characters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from automixer_core.benchmarks.tasks import Prompt, RowError, TaskDefinition, get_int_label, get_str_list
from automixer_core.errors import BenchmarkError

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


class CustomBenchmarkConfig(BaseModel):
    """The YAML of a custom benchmark.

    Attributes:
        name: benchmark name (lower case; must not collide with a built-in one).
        prompt: the context template.
        template: ``format`` (``{field}`` placeholders) or ``jinja`` (lm-eval style ``{{field}}``).
        choices: field path holding the list of choice strings, or the literal list of choices.
        label: field path of the gold answer.
        choice_labels: optional field path of labels (``["A", "B", ...]``) the gold is matched against.
        label_offset: subtracted from an integer gold (1 for labels counted from 1).
        target_delimiter: put between the context and each choice.
        eval_split: default evaluation split.
        query_split: default query split.
        files: split -> jsonl path (relative paths are relative to the YAML file).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    prompt: str
    template: Literal["format", "jinja"] = "format"
    choices: str | list[str]
    label: str
    choice_labels: str | None = None
    label_offset: int = 0
    target_delimiter: str = " "
    eval_split: str = "validation"
    query_split: str = "train"
    files: dict[str, str] = Field(default_factory=dict)

    @field_validator("choices")
    @classmethod
    def _nonempty_choices(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and len(v) < 2:
            raise ValueError("a literal choices list needs at least two choices")
        return v


def lookup(row: Mapping[str, Any], path: str) -> Any:
    """The value at a field path like ``choices.text`` or ``choices.text[0]`` in a row."""
    value: Any = row
    pos = 0
    path = path.strip()
    if not path:
        raise RowError(path, "is an empty placeholder")
    for m in _PATH_PART.finditer(path):
        if m.start() != pos and path[pos : m.start()] != ".":
            raise RowError(path, "is not a valid field path (use a.b or a[0])")
        pos = m.end()
        key, index = m.group(1), m.group(2)
        if key is not None:
            if not isinstance(value, Mapping) or key not in value or value[key] is None:
                raise RowError(path, "is missing or null")
            value = value[key]
        else:
            if not isinstance(value, list) or not -len(value) <= int(index) < len(value):
                raise RowError(path, "index is out of range")
            value = value[int(index)]
    if pos != len(path):
        raise RowError(path, "is not a valid field path (use a.b or a[0])")
    return value


def render_format(template: str, row: Mapping[str, Any]) -> str:
    """Fill ``{field.path}`` placeholders from ``row``; ``{{``/``}}`` give literal braces."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        return str(lookup(row, m.group(1)))

    return _PLACEHOLDER.sub(repl, template)


def _jinja_renderer(cfg: CustomBenchmarkConfig, source: str) -> Any:
    """A row -> context function for a ``template: jinja`` prompt, rendered in a sandbox.

    The template is compiled once by :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`: it can
    read the row's fields and use filters, but not reach Python internals (``__globals__``,
    ``__class__``, ...) nor mutate values, so a benchmark YAML cannot run code. An unsafe access
    raises :class:`BenchmarkError` naming the YAML file (``source``) and the prompt.
    """
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    try:
        template = env.from_string(cfg.prompt)
    except jinja2.TemplateSyntaxError as exc:
        raise BenchmarkError(
            f"Custom benchmark {cfg.name!r} ({source}): its jinja prompt is not a valid template "
            f"({exc.message}, line {exc.lineno})",
            expected="a Jinja template such as 'Question: {{question}}\\nAnswer:'",
            fix=f"correct 'prompt' in {source}",
        ) from exc

    def render(row: Mapping[str, Any]) -> str:
        try:
            return template.render(**row)
        except jinja2.exceptions.SecurityError as exc:
            raise BenchmarkError(
                f"Custom benchmark {cfg.name!r} ({source}): its jinja prompt tries an unsafe operation "
                f"({str(exc).rstrip('.')}); the template was stopped before it could run",
                expected="a prompt that only reads the row's fields and uses filters "
                "(e.g. {{question}}, {{choices.text[0]}}, {{ ctx | trim }})",
                fix=f"remove the access to Python internals (attributes starting with '_', "
                f"__globals__, os, ...) from 'prompt' in {source}",
            ) from exc
        except jinja2.UndefinedError as exc:
            raise RowError("prompt", f"refers to a field the row lacks ({exc.message})") from exc

    return render


def make_builder(cfg: CustomBenchmarkConfig, source: str = "<custom benchmark>") -> Any:
    """A row builder (row -> :class:`Prompt`) for a custom benchmark config.

    Args:
        cfg: the validated YAML.
        source: where the YAML came from (named in errors about the prompt itself).

    Raises:
        BenchmarkError: a ``jinja`` prompt is not a valid template (at once), or tries an unsafe
            operation (when a row is built).
    """
    render_jinja = _jinja_renderer(cfg, source) if cfg.template == "jinja" else None

    def build(row: Mapping[str, Any]) -> Prompt:
        context = render_jinja(row) if render_jinja is not None else render_format(cfg.prompt, row)
        if isinstance(cfg.choices, list):
            choices = list(cfg.choices)
        else:
            choices = get_str_list(lookup(row, cfg.choices), cfg.choices, min_len=2)
        raw = lookup(row, cfg.label)
        if cfg.choice_labels is not None:
            labels = [str(x) for x in get_str_list(lookup(row, cfg.choice_labels), cfg.choice_labels)]
            if str(raw) not in labels:
                raise RowError(cfg.label, f"{raw!r} is not one of {labels}")
            gold = labels.index(str(raw))
        elif isinstance(raw, str) and not raw.strip().isdigit():
            if raw not in choices:
                raise RowError(cfg.label, f"{raw!r} is neither an index nor one of the choices")
            gold = choices.index(raw)
        else:
            gold = get_int_label({cfg.label: raw}, cfg.label) - cfg.label_offset
        if not 0 <= gold < len(choices):
            raise RowError(cfg.label, f"gives choice {gold}, but there are {len(choices)} choices")
        return Prompt(
            contexts=tuple(context for _ in choices),
            continuations=tuple(cfg.target_delimiter + c for c in choices),
            gold=gold,
            choice_lengths=tuple(len(c) for c in choices),
        )

    return build


def load_custom_config(path: str | Path) -> CustomBenchmarkConfig:
    """Parse and validate a custom benchmark YAML. Raises BenchmarkError naming the file and field."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BenchmarkError(f"Custom benchmark file {p} does not exist", fix="check the path") from exc
    except yaml.YAMLError as exc:
        raise BenchmarkError(f"{p} is not valid YAML: {exc}", fix="fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise BenchmarkError(
            f"{p} holds a {type(data).__name__}",
            expected="a mapping of fields (name, prompt, choices, label, ...)",
        )
    try:
        return CustomBenchmarkConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise BenchmarkError(
            f"{p}: field {loc!r} {first['msg'].lower()} (got {first.get('input')!r})",
            expected="name, prompt, choices and label; optionally template, choice_labels, label_offset, "
            "target_delimiter, eval_split, query_split, files",
            fix=f"correct {loc!r} in {p.name}",
        ) from exc


def load_custom_task(path: str | Path) -> TaskDefinition:
    """A :class:`TaskDefinition` from a custom benchmark YAML (its version = hash of the file)."""
    p = Path(path)
    cfg = load_custom_config(p)
    files = tuple((split, str((p.parent / f).resolve())) for split, f in cfg.files.items())
    version = "custom-" + hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    fields = tuple(
        sorted(
            {m.group(1).split(".")[0].split("[")[0] for m in _PLACEHOLDER.finditer(cfg.prompt) if m.group(1)}
        )
    )
    return TaskDefinition(
        name=cfg.name,
        build=make_builder(cfg, str(p)),
        eval_split=cfg.eval_split,
        query_split=cfg.query_split,
        fields=(*fields, cfg.label),
        version=version,
        description=f"custom benchmark from {p.name}",
        data_files=files,
    )


def register_custom(path: str | Path) -> TaskDefinition:
    """Load a custom benchmark YAML and register it, so a spec can refer to it by name."""
    from automixer_core.benchmarks.registry import register_task

    task = load_custom_task(path)
    register_task(task, replace=True)
    return task
