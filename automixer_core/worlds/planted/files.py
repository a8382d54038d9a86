"""The files of a planted-skill world: benchmark question rows (ARC schema), the custom-benchmark
YAML, jsonl writing, and preparing the output folder."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from automixer_core.errors import ConfigError
from automixer_core.worlds.planted.text import fact_question

CHOICE_LABELS: tuple[str, str, str, str] = ("A", "B", "C", "D")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(_dumps(row) + "\n")


def _question_rows(
    rng: random.Random,
    name: str,
    split: str,
    relation: str,
    values: Sequence[str],
    items: Sequence[tuple[str, str]],
) -> list[dict[str, Any]]:
    rows = []
    for i, (entity, gold) in enumerate(items):
        choices = list(values)
        rng.shuffle(choices)
        rows.append(
            {
                "id": f"{name}-{split}-{i:04d}",
                "question": fact_question(relation, entity),
                "choices": {"text": choices, "label": list(CHOICE_LABELS)},
                "answerKey": CHOICE_LABELS[choices.index(gold)],
            }
        )
    return rows


def _benchmark_yaml(name: str) -> str:
    spec = {
        "name": name,
        "prompt": "{question}",
        "choices": "choices.text",
        "label": "answerKey",
        "choice_labels": "choices.label",
        "target_delimiter": " ",
        "eval_split": "validation",
        "query_split": "train",
        "files": {"validation": f"{name}/validation.jsonl", "train": f"{name}/train.jsonl"},
    }
    text: str = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    return text


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"Output {out} is a file", expected="a folder (new or empty)", fix="choose a folder"
        )
    if out.is_dir() and any(out.iterdir()):
        ours = (out / "world.json").is_file()
        if not overwrite or not ours:
            raise ConfigError(
                f"Output folder {out} is not empty"
                + ("" if ours else " and holds no world.json (it is not a planted world)"),
                expected="a new or empty folder, or an earlier planted world with overwrite=True",
                fix="choose another folder" + (", or pass overwrite=True" if ours else ""),
            )
        for sub in ("corpus", "benchmarks"):
            shutil.rmtree(out / sub, ignore_errors=True)
        (out / "world.json").unlink()
    out.mkdir(parents=True, exist_ok=True)
