"""Typed config of one benchmark: which task, where its rows are, which rows to use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BenchmarkSpec(BaseModel):
    """One benchmark to evaluate on and to draw influence queries from.

    Exactly one data location: ``data_dir`` (a root holding ``benchmarks/<name>/<split>.jsonl``,
    like ``../shared/data``), ``path`` (the folder of this benchmark's ``<split>.jsonl`` files) or
    ``hf_dataset`` (anything ``datasets.load_dataset`` accepts, with ``hf_config``). A custom
    benchmark (``custom_yaml``) may instead list its files in the YAML.

    Splits default to the task's own (evaluation on test where the local validation is a small
    sample, queries from the other split). When the query and the evaluation split are the same,
    the query rows are drawn first and held out of the evaluation rows (ours), so the two never
    share a question.

    Attributes:
        name: a registered benchmark (``arc_easy``, ``siqa``, ...) or the custom benchmark's name.
        data_dir: root folder with ``benchmarks/<name>/<split>.jsonl``.
        path: folder holding ``<split>.jsonl`` of this benchmark.
        hf_dataset: ``datasets.load_dataset`` path (hub id or builder) for the rows.
        hf_config: its config name (``ARC-Easy``, ``winogrande_xl``, ...).
        hf_kwargs: further ``load_dataset`` arguments (``revision``, ``data_files``, ``cache_dir``).
        custom_yaml: a custom benchmark definition (see :mod:`automixer_core.benchmarks.custom`).
        eval_split: split to evaluate on (``None``: the task's default).
        query_split: split to take query examples from (``None``: the task's default).
        eval_limit: evaluate on a seeded random sample of this many rows (``None``: all).
        query_limit: number of query rows (``None``: all, or 100 held out when the splits coincide).
        seed: seed of both samples.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    data_dir: Path | None = None
    path: Path | None = None
    hf_dataset: str | None = None
    hf_config: str | None = None
    hf_kwargs: dict[str, Any] = Field(default_factory=dict)
    custom_yaml: Path | None = None
    eval_split: str | None = None
    query_split: str | None = None
    eval_limit: int | None = Field(default=None, ge=1)
    query_limit: int | None = Field(default=None, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _one_location(self) -> BenchmarkSpec:
        given = [k for k in ("data_dir", "path", "hf_dataset") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"benchmark {self.name!r} sets {' and '.join(given)}; set exactly one data location "
                "(data_dir, path or hf_dataset)"
            )
        if not given and self.custom_yaml is None:
            raise ValueError(
                f"benchmark {self.name!r} has no data location; set data_dir (the folder holding "
                "benchmarks/<name>/<split>.jsonl), path or hf_dataset"
            )
        if (self.hf_config is not None or self.hf_kwargs) and self.hf_dataset is None:
            raise ValueError(
                "hf_config or hf_kwargs is set but hf_dataset is not; set hf_dataset too, or drop them"
            )
        return self
