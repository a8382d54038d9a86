"""Read benchmark rows, build questions, choose the evaluation and query rows, digest the data.

Rows are read with ``datasets`` (``load_dataset("json", data_files=...)`` for local jsonl, or any
``load_dataset`` source), so local files and hub datasets go through the same loader.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automixer_core.benchmarks.instances import MultipleChoiceInstance
from automixer_core.benchmarks.registry import get_task
from automixer_core.benchmarks.spec import BenchmarkSpec
from automixer_core.benchmarks.tasks import RowError, TaskDefinition
from automixer_core.errors import BenchmarkError

DEFAULT_HOLDOUT_QUERY_ROWS = 100
"""Query rows held out of the evaluation rows when both come from the same split (ours)."""

_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class SplitRows:
    """The rows of one split and where they came from.

    Attributes:
        split: split name.
        source: file path or ``hf:<dataset>[/<config>]:<split>``.
        digest: sha256 of the file (local) or the ``datasets`` fingerprint (hub).
        rows: the rows, in file order (row i has ``doc_id`` i).
    """

    split: str
    source: str
    digest: str
    rows: list[dict[str, Any]] = field(repr=False)


@dataclass(frozen=True)
class Benchmark:
    """A loaded benchmark: the questions to evaluate on, the query questions, and digests.

    Attributes:
        name: canonical task name.
        task: its definition.
        eval_split: split of ``eval_instances``.
        query_split: split of ``query_instances``.
        eval_instances: questions to evaluate on, in ``doc_id`` order.
        query_instances: questions for influence queries, in ``doc_id`` order.
        sources: split -> where its rows came from.
        data_digest: sha256 over the task definition (name, version) and the split files' digests;
            changes when the data or the prompt construction changes.
        digest: ``data_digest`` plus the selected rows (limits, seed); the cache key of this
            exact evaluation/query set.
    """

    name: str
    task: TaskDefinition
    eval_split: str
    query_split: str
    eval_instances: list[MultipleChoiceInstance] = field(repr=False)
    query_instances: list[MultipleChoiceInstance] = field(repr=False)
    sources: dict[str, str]
    data_digest: str
    digest: str


# ---------------------------------------------------------------------------------------------
# reading


def _diagnose_jsonl(path: Path) -> str | None:
    """Find the first malformed line of a jsonl file; a sentence naming row and field, or None."""
    kinds: dict[str, tuple[str, int]] = {}
    with path.open(encoding="utf-8", errors="replace") as f:
        row = -1
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                return (
                    f"{path}: row {row} (line {lineno}) is not valid JSON ({exc.msg} at column {exc.colno})"
                )
            if not isinstance(obj, dict):
                return f"{path}: row {row} (line {lineno}) is a JSON {type(obj).__name__}, not an object"
            for key, value in obj.items():
                if value is None:
                    continue
                kind = type(value).__name__
                seen = kinds.setdefault(key, (kind, row))
                if seen[0] != kind and {seen[0], kind} != {"int", "float"}:
                    return (
                        f"{path}: row {row} (line {lineno}), field {key!r} is a {kind} but it is a "
                        f"{seen[0]} in row {seen[1]}"
                    )
    return None


def read_jsonl_split(path: str | Path, split: str = "data") -> SplitRows:
    """Read one local jsonl file with ``datasets.load_dataset("json", ...)``.

    Raises:
        BenchmarkError: the file is missing, empty, or has a malformed row (named by row and field).
    """
    import datasets

    p = Path(path)
    if not p.is_file():
        here = sorted(x.name for x in p.parent.glob("*.jsonl")) if p.parent.is_dir() else []
        raise BenchmarkError(
            f"Benchmark file {p} does not exist",
            expected=f"one of the files in {p.parent}: {', '.join(here)}" if here else f"a jsonl file at {p}",
            fix="check the data location and the split name",
        )
    try:
        ds = datasets.load_dataset("json", data_files={"rows": str(p)}, split="rows")
        rows = ds.to_list()
    except Exception as exc:
        detail = _diagnose_jsonl(p)
        raise BenchmarkError(
            detail or f"{p} could not be read as jsonl: {exc}",
            expected="one JSON object per line, each field of one type in every row",
            fix="repair or remove that row",
        ) from exc
    if not rows:
        raise BenchmarkError(
            f"Benchmark file {p} holds no rows", fix="point the benchmark at a non-empty split"
        )
    return SplitRows(split=split, source=str(p), digest=file_sha256(p), rows=rows)


def read_hf_split(
    dataset: str, config: str | None, split: str, kwargs: dict[str, Any] | None = None
) -> SplitRows:
    """Read one split of any ``datasets.load_dataset`` source (digest = the dataset fingerprint)."""
    import datasets

    try:
        ds = datasets.load_dataset(dataset, config, split=split, **(kwargs or {}))
    except Exception as exc:
        raise BenchmarkError(
            f"datasets.load_dataset({dataset!r}, {config!r}, split={split!r}) failed: {exc}",
            fix="check the dataset id, config and split, and that it is available offline if there is no network",
        ) from exc
    source = f"hf:{dataset}" + (f"/{config}" if config else "") + f":{split}"
    return SplitRows(split=split, source=source, digest=str(ds._fingerprint), rows=ds.to_list())


def split_file(spec: BenchmarkSpec, task: TaskDefinition, split: str) -> Path | None:
    """The local file of ``split`` (``None`` when the rows come from ``datasets.load_dataset``)."""
    if spec.hf_dataset is not None:
        return None
    if spec.path is not None:
        return Path(spec.path) / f"{split}.jsonl"
    if spec.data_dir is not None:
        return Path(spec.data_dir) / "benchmarks" / task.name / f"{split}.jsonl"
    files = dict(task.data_files)
    if split not in files:
        raise BenchmarkError(
            f"Custom benchmark {task.name!r} lists no file for split {split!r}",
            expected=f"one of the splits its YAML lists: {', '.join(files) or '(none)'}",
            fix="add the split under 'files' in the YAML, or choose a listed split",
        )
    return Path(files[split])


def _missing_split_error(spec: BenchmarkSpec, task: TaskDefinition, split: str, path: Path) -> BenchmarkError:
    """The error for a split whose local file does not exist: names benchmark, split, path and the fix."""
    here = sorted(x.name for x in path.parent.glob("*.jsonl")) if path.parent.is_dir() else []
    splits = [x.removesuffix(".jsonl") for x in here]
    if spec.custom_yaml is not None or (spec.path is None and spec.data_dir is None):
        where = f"in {spec.custom_yaml}" if spec.custom_yaml is not None else "in the custom benchmark's YAML"
        fix = (
            f"add the file {path}, or set eval_split/query_split {where} to a split that exists"
            + (f" ({', '.join(splits)})" if splits else "")
            + ", or correct its 'files' entry"
        )
    else:
        fix = (
            f"add the file {path}, or set eval_split/query_split of benchmark {task.name!r} to a split "
            "that exists"
            + (f" ({', '.join(splits)})" if splits else "")
            + ", or point data_dir/path at the folder holding its files"
        )
    return BenchmarkError(
        f"Benchmark {task.name!r}, split {split!r}: its file {path} does not exist",
        expected=(
            f"one of the split files in {path.parent}: {', '.join(here)}"
            if here
            else f"a jsonl file at {path} (the folder {path.parent} holds no split files)"
        ),
        fix=fix,
    )


def read_split(spec: BenchmarkSpec, task: TaskDefinition, split: str) -> SplitRows:
    """The rows of ``split`` from wherever ``spec`` says the benchmark lives.

    Raises:
        BenchmarkError: the split's file does not exist (naming the benchmark, the split and the
            path), or it cannot be read.
    """
    path = split_file(spec, task, split)
    if path is None:
        assert spec.hf_dataset is not None
        return read_hf_split(spec.hf_dataset, spec.hf_config, split, spec.hf_kwargs)
    if not path.is_file():
        raise _missing_split_error(spec, task, split, path)
    return read_jsonl_split(path, split)


def build_instances(
    task: TaskDefinition, split_rows: SplitRows, doc_ids: Iterable[int] | None = None
) -> list[MultipleChoiceInstance]:
    """Questions for the given rows (all rows when ``doc_ids`` is None).

    Raises:
        BenchmarkError: naming the source, the row number and the field of a malformed row.
    """
    ids = range(len(split_rows.rows)) if doc_ids is None else doc_ids
    out: list[MultipleChoiceInstance] = []
    for i in ids:
        try:
            out.append(task.instance(split_rows.rows[i], doc_id=i))
        except RowError as exc:
            where = f"row {i}" if split_rows.source.startswith("hf:") else f"row {i} (line {i + 1})"
            raise BenchmarkError(
                f"{split_rows.source}: {where}, field {exc.field_name!r} {exc.problem}",
                expected=f"rows of {task.name} with fields {', '.join(task.fields)}",
                fix="repair or remove that row",
            ) from exc
    return out


# ---------------------------------------------------------------------------------------------
# selection


def select_rows(
    n_rows: int, limit: int | None, seed: int, *, salt: str = "", exclude: Sequence[int] = ()
) -> list[int]:
    """A seeded random sample of ``limit`` row numbers out of ``n_rows`` (minus ``exclude``), sorted.

    ``limit=None`` (or a limit at least the number of candidates) keeps every candidate. The
    sample depends only on (n_rows, limit, seed, salt, exclude), never on the process.
    """
    banned = set(exclude)
    candidates = [i for i in range(n_rows) if i not in banned]
    if limit is None or limit >= len(candidates):
        return candidates
    rng = random.Random(f"{salt}:{seed}")
    return sorted(rng.sample(candidates, limit))


def resolve_task(spec: BenchmarkSpec) -> TaskDefinition:
    """The task a spec refers to: its custom YAML if it has one, else the registry entry."""
    if spec.custom_yaml is not None:
        from automixer_core.benchmarks.custom import load_custom_task

        task = load_custom_task(spec.custom_yaml)
        if task.name != spec.name.strip().lower():
            raise BenchmarkError(
                f"Benchmark spec name {spec.name!r} differs from the name {task.name!r} in {spec.custom_yaml}",
                fix="use the same name in both",
            )
        return task
    return get_task(spec.name)


def load_benchmark(spec: BenchmarkSpec) -> Benchmark:
    """Load a benchmark: read its splits, build and validate every row, select eval and query rows.

    Every row of the splits used is built, so a malformed row fails here even when it is not
    sampled. The query rows are drawn first; when they share the evaluation split they are
    excluded from the evaluation rows.
    """
    task = resolve_task(spec)
    eval_split = spec.eval_split or task.eval_split
    query_split = spec.query_split or task.query_split
    eval_rows = read_split(spec, task, eval_split)
    query_rows = eval_rows if query_split == eval_split else read_split(spec, task, query_split)

    all_eval = build_instances(task, eval_rows)
    all_query = all_eval if query_rows is eval_rows else build_instances(task, query_rows)

    same = query_split == eval_split
    q_limit = spec.query_limit
    if same and q_limit is None:
        q_limit = min(DEFAULT_HOLDOUT_QUERY_ROWS, len(all_query) // 2)
    q_ids = select_rows(len(all_query), q_limit, spec.seed, salt=f"{task.name}:{query_split}:query")
    e_ids = select_rows(
        len(all_eval),
        spec.eval_limit,
        spec.seed,
        salt=f"{task.name}:{eval_split}:eval",
        exclude=q_ids if same else (),
    )
    sources = {eval_split: eval_rows.source, query_split: query_rows.source}
    data_digest = _sha256_json(
        {
            "task": task.name,
            "version": task.version,
            "splits": {eval_split: eval_rows.digest, query_split: query_rows.digest},
        }
    )
    digest = _sha256_json({"data": data_digest, "eval": [eval_split, e_ids], "query": [query_split, q_ids]})
    return Benchmark(
        name=task.name,
        task=task,
        eval_split=eval_split,
        query_split=query_split,
        eval_instances=[all_eval[i] for i in e_ids],
        query_instances=[all_query[i] for i in q_ids],
        sources=sources,
        data_digest=data_digest,
        digest=digest,
    )


def load_instances(
    spec: BenchmarkSpec, split: str | None = None, *, limit: int | None = None, seed: int | None = None
) -> list[MultipleChoiceInstance]:
    """Questions of one split (default: the spec's evaluation split), optionally a seeded sample.

    No hold-out logic: use :func:`load_benchmark` to get disjoint evaluation and query rows.
    """
    task = resolve_task(spec)
    rows = read_split(spec, task, split or spec.eval_split or task.eval_split)
    ids = select_rows(
        len(rows.rows), limit, spec.seed if seed is None else seed, salt=f"{task.name}:{rows.split}:eval"
    )
    all_rows = build_instances(task, rows)
    return [all_rows[i] for i in ids]


def benchmark_data_digest(spec: BenchmarkSpec) -> str:
    """``data_digest`` of a spec's benchmark (task definition + split digests) without building rows.

    Local files are only hashed, not parsed; hub datasets are loaded for their fingerprint.

    Raises:
        BenchmarkError: a split's file does not exist (naming the benchmark, the split and the path).
    """
    task = resolve_task(spec)
    eval_split = spec.eval_split or task.eval_split
    query_split = spec.query_split or task.query_split
    digests: dict[str, str] = {}
    for split in dict.fromkeys([eval_split, query_split]):
        path = split_file(spec, task, split)
        if path is None:
            digests[split] = read_split(spec, task, split).digest
            continue
        if not path.is_file():
            raise _missing_split_error(spec, task, split, path)
        digests[split] = file_sha256(path)
    return _sha256_json({"task": task.name, "version": task.version, "splits": digests})
