"""Name -> :class:`TaskDefinition` for the built-in benchmarks and any registered custom ones."""

from __future__ import annotations

from automixer_core.benchmarks.tasks import BUILTIN_TASKS, TaskDefinition
from automixer_core.errors import BenchmarkError

_TASKS: dict[str, TaskDefinition] = {t.name: t for t in BUILTIN_TASKS}
_ALIASES: dict[str, str] = {alias: t.name for t in BUILTIN_TASKS for alias in t.aliases}

PAPER_BENCHMARKS: tuple[str, ...] = (
    "arc_easy",
    "arc_challenge",
    "boolq",
    "piqa",
    "social_i_qa",
    "hellaswag",
    "openbookqa",
    "winogrande",
)
"""The eight benchmarks of the AutoMixer paper."""


def canonical_name(name: str) -> str:
    """The registered name for ``name`` or one of its aliases (``siqa`` -> ``social_i_qa``)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _TASKS:
        raise BenchmarkError(
            f"Unknown benchmark {name!r}",
            expected=f"one of {', '.join(sorted(_TASKS))} (aliases: {', '.join(sorted(_ALIASES))})",
            fix="fix the name, or describe the benchmark in a custom YAML (automixer_core.benchmarks.custom)",
        )
    return key


def get_task(name: str) -> TaskDefinition:
    """The task definition registered under ``name`` (or an alias). Raises BenchmarkError if unknown."""
    return _TASKS[canonical_name(name)]


def list_tasks() -> list[str]:
    """Names of all registered tasks, built-in first, in registration order."""
    return list(_TASKS)


def register_task(task: TaskDefinition, *, replace: bool = False) -> None:
    """Register a (custom) task under its name. Built-in names cannot be replaced."""
    builtin = {t.name for t in BUILTIN_TASKS}
    key = task.name.lower()
    if key in builtin or key in _ALIASES:
        raise BenchmarkError(
            f"Custom benchmark name {task.name!r} collides with a built-in benchmark",
            expected="a name not among " + ", ".join(sorted(builtin | set(_ALIASES))),
            fix="rename the custom benchmark",
        )
    if key in _TASKS and not replace and _TASKS[key].version != task.version:
        raise BenchmarkError(
            f"A different benchmark is already registered as {task.name!r}",
            fix="choose another name, or pass replace=True",
        )
    _TASKS[key] = task
