"""Benchmarks: the lm-evaluation-harness zero-shot tasks (and custom YAML ones) as questions.

- :mod:`.instances`: :class:`MultipleChoiceInstance`, one question as (context, continuation) requests.
- :mod:`.tasks`: the built-in task definitions (prompt construction, row by row).
- :mod:`.registry`: name -> task definition (aliases such as ``siqa``).
- :mod:`.spec`: :class:`BenchmarkSpec`, the typed config of one benchmark.
- :mod:`.loading`: reading rows, choosing evaluation and query rows, data digests.
- :mod:`.custom`: custom benchmarks from a small YAML.
"""

from automixer_core.benchmarks.custom import CustomBenchmarkConfig, load_custom_task, register_custom
from automixer_core.benchmarks.instances import MultipleChoiceInstance
from automixer_core.benchmarks.loading import (
    Benchmark,
    SplitRows,
    benchmark_data_digest,
    build_instances,
    file_sha256,
    load_benchmark,
    load_instances,
    read_jsonl_split,
    select_rows,
)
from automixer_core.benchmarks.registry import (
    PAPER_BENCHMARKS,
    canonical_name,
    get_task,
    list_tasks,
    register_task,
)
from automixer_core.benchmarks.spec import BenchmarkSpec
from automixer_core.benchmarks.tasks import BUILTIN_TASKS, TARGET_DELIMITER, TaskDefinition

__all__ = [
    "BUILTIN_TASKS",
    "PAPER_BENCHMARKS",
    "TARGET_DELIMITER",
    "Benchmark",
    "BenchmarkSpec",
    "CustomBenchmarkConfig",
    "MultipleChoiceInstance",
    "SplitRows",
    "TaskDefinition",
    "benchmark_data_digest",
    "build_instances",
    "canonical_name",
    "file_sha256",
    "get_task",
    "list_tasks",
    "load_benchmark",
    "load_custom_task",
    "load_instances",
    "read_jsonl_split",
    "register_custom",
    "register_task",
    "select_rows",
]
