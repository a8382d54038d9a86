"""The bad-input catalogue: each bad input, given to the real CLI against a store that already holds
a published mixture, is one typed error that names the thing and the fix, and loses nothing.

Every case asserts: the exit code (2: the command could not start; 1: a run started and failed),
the error's class and message on the last line ("error: <Class>: ..."), that the message names the
bad thing (a path, a field, a value) and holds a ``Fix:``, that no traceback reaches the screen, and
that every file under ``mixtures/`` (the published mixtures and ``latest.json``) is byte for byte
what it was. ``python -m pytest tests/flows/test_catalogue.py -v`` lists the cases;
``AUTOMIXER_CATALOGUE_TABLE=table.md`` also appends each case's row (input, exit code, class, the
message's first sentence) to that file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from automixer.cli import app
from automixer_core.config import RunConfig
from automixer_core.store import Store
from flows.remix import remix_flow

pytestmark = pytest.mark.slow

runner = CliRunner()
BENCHES = ["arc_easy", "piqa"]
DOMAINS = ["code", "encyclopedia", "narrative"]


# --------------------------------------------------------------------------------------------
# the world every case starts from: a run, a corpus, benchmark data and a published mixture


@dataclass
class World:
    """One case's folder, the run config it starts from, and the published store it must not touch."""

    tmp: Path
    base: dict[str, Any]
    checkpoints: Path
    corpus: Path
    data: Path
    store: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def config(self, **over: dict[str, Any] | Any) -> Path:
        """The base config with ``section={field: value}`` overrides (a non-dict replaces it)."""
        raw = json.loads(json.dumps(self.base))
        for section, values in over.items():
            if isinstance(values, dict) and isinstance(raw.get(section), dict):
                raw[section].update(values)
            else:
                raw[section] = values
        path = self.tmp / "run.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def run_copy(self, name: str = "run") -> Path:
        """A copy of the run's checkpoints to break."""
        dest = self.tmp / name
        shutil.copytree(self.checkpoints, dest)
        return dest

    def corpus_copy(self) -> Path:
        dest = self.tmp / "corpus"
        shutil.copytree(self.corpus, dest)
        return dest

    def data_copy(self) -> Path:
        """Benchmark data with the benchmarks linked (not copied) and ``arc_easy`` a real copy."""
        dest = self.tmp / "data"
        (dest / "benchmarks").mkdir(parents=True)
        for b in BENCHES:
            src = self.data / "benchmarks" / b
            if b == "arc_easy":
                shutil.copytree(src, dest / "benchmarks" / b)
            else:
                (dest / "benchmarks" / b).symlink_to(src)
        return dest


def _snapshot(store: Path) -> dict[str, str]:
    """sha256 of every file under ``mixtures/``: what a reader of the store sees as published."""
    root = store / "mixtures"
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def published(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> World:
    root = tmp_path_factory.mktemp("catalogue")
    ckpts = root / "run"
    ckpts.mkdir()
    for ckpt in proxy_run.checkpoints[:2]:
        shutil.copytree(
            ckpt, ckpts / ckpt.name, ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt")
        )
    corpus = root / "corpus"
    for d in DOMAINS:
        (corpus / d).mkdir(parents=True)
        src = sorted((shared_data / "corpus" / d).glob("*.jsonl"))[0]
        lines = src.read_text().splitlines()[:8]
        (corpus / d / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    base: dict[str, Any] = {
        "store": str(root / "store"),
        "checkpoints": {"uri": str(ckpts)},
        "benchmarks": {"names": BENCHES, "data_dir": str(shared_data), "eval_limit": 8, "query_limit": 4},
        "corpus": {"uri": str(corpus), "shard_docs": 8, "max_doc_chars": 600},
        "influence": {"estimator": "grad_dot", "hessian_samples": 8, "batch_size": 8},
        "aggregation": {"bootstrap": 20},
        "publish": {"exports": ["hf_interleave"]},
    }
    out = remix_flow(RunConfig.model_validate(base))
    assert Store(base["store"]).exists(f"mixtures/{out['id']}/manifest.json")
    return World(root, base, ckpts, corpus, shared_data, root / "store")


@pytest.fixture()
def world(published: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.chdir(tmp_path)  # the CLI's logs land here
    yield World(
        tmp_path, published.base, published.checkpoints, published.corpus, published.data, published.store
    )


# --------------------------------------------------------------------------------------------
# the cases


@dataclass(frozen=True)
class Case:
    """A bad input: ``make`` writes it and returns the CLI's arguments."""

    id: str
    make: Callable[[World], list[str]]
    error: str  # the error's class
    names: tuple[str, ...]  # what the message must name (case-insensitive substrings)
    exit_code: int  # 2: could not start; 1: the run started and failed


def _yaml(text: str) -> Callable[[World], list[str]]:
    def make(w: World) -> list[str]:
        path = w.tmp / "run.yaml"
        path.write_text(text.format(store=w.base["store"]))
        return ["remix", str(path)]

    return make


def _remix(**over: Any) -> Callable[[World], list[str]]:
    return lambda w: ["remix", str(w.config(**over))]


def _checkpoint_case(breaker: Callable[[Path], None]) -> Callable[[World], list[str]]:
    """A copy of the run whose last checkpoint ``breaker`` damages."""

    def make(w: World) -> list[str]:
        run = w.run_copy()
        breaker(sorted(run.iterdir(), key=lambda p: int(p.name.split("-")[-1]))[-1])
        return ["remix", str(w.config(checkpoints={"uri": str(run)}))]

    return make


def _truncate_weights(ckpt: Path) -> None:
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _bad_config_json(ckpt: Path) -> None:
    (ckpt / "config.json").write_text('{"model_type": "llama", "hidden_size": ')


def _no_tokenizer(ckpt: Path) -> None:
    for f in ckpt.glob("tokenizer*"):
        f.unlink()


def _unknown_model_type(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**cfg, "model_type": "llamma"}))


def _wrong_shape(ckpt: Path) -> None:
    """Weights saved from a model of another width than its config.json says."""
    tensors = load_file(str(ckpt / "model.safetensors"))
    name = next(k for k in tensors if k.endswith("embed_tokens.weight"))
    tensors[name] = torch.zeros(tensors[name].shape[0], tensors[name].shape[1] + 3)
    save_file(tensors, str(ckpt / "model.safetensors"), metadata={"format": "pt"})


def _same_step_twice(w: World) -> list[str]:
    run = w.run_copy()
    last = sorted(run.iterdir(), key=lambda p: int(p.name.split("-")[-1]))[-1]
    shutil.copytree(last, run / f"step{last.name.split('-')[-1]}")
    return ["remix", str(w.config(checkpoints={"uri": str(run)}))]


def _vocab_too_large(w: World) -> list[str]:
    run = w.run_copy()
    last = sorted(run.iterdir(), key=lambda p: int(p.name.split("-")[-1]))[-1]
    cfg = json.loads((last / "config.json").read_text())
    tok = json.loads((last / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    extra = {f"zzextra{i}": len(vocab) + i for i in range(cfg["vocab_size"] + 10 - len(vocab))}
    vocab.update(extra)
    (last / "tokenizer.json").write_text(json.dumps(tok))
    return ["remix", str(w.config(checkpoints={"uri": str(run)}))]


def _corpus_case(breaker: Callable[[Path], None]) -> Callable[[World], list[str]]:
    def make(w: World) -> list[str]:
        corpus = w.corpus_copy()
        breaker(corpus)
        return ["remix", str(w.config(corpus={"uri": str(corpus)}))]

    return make


def _write(rel: str, content: bytes | str) -> Callable[[Path], None]:
    def breaker(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)

    return breaker


def _only_txt(root: Path) -> None:
    for f in root.rglob("*.jsonl"):
        f.rename(f.with_suffix(".txt"))


def _benchmark_case(breaker: Callable[[list[Path]], None]) -> Callable[[World], list[str]]:
    """A copy of the benchmark data whose ``arc_easy`` split files ``breaker`` damages."""

    def make(w: World) -> list[str]:
        data = w.data_copy()
        breaker(sorted((data / "benchmarks" / "arc_easy").glob("*.jsonl")))
        return ["remix", str(w.config(benchmarks={"data_dir": str(data)}))]

    return make


def _rows(edit: Callable[[dict[str, Any]], Any]) -> Callable[[list[Path]], None]:
    """Every split file's first row replaced by ``edit(row)`` (a dict or a raw line)."""

    def breaker(files: list[Path]) -> None:
        for f in files:
            lines = f.read_text().splitlines()
            new = edit(json.loads(lines[0]))
            lines[0] = new if isinstance(new, str) else json.dumps(new)
            f.write_text("\n".join(lines) + "\n")

    return breaker


def _custom_yaml(text: str, data: str | None = None) -> Callable[[World], list[str]]:
    def make(w: World) -> list[str]:
        if data is not None:
            (w.tmp / "data.jsonl").write_text(data)
        (w.tmp / "mine.yaml").write_text(text.format(tmp=w.tmp))
        return ["remix", str(w.config(benchmarks={"custom": [str(w.tmp / "mine.yaml")]}))]

    return make


def _incomplete_mixture(w: World) -> list[str]:
    """A copy of the published mixture without its manifest (a publish killed half-way)."""
    latest = json.loads((w.store / "mixtures" / "latest.json").read_text())["id"]
    dest = w.tmp / "half" / latest
    shutil.copytree(w.store / "mixtures" / latest, dest)
    (dest / "manifest.json").unlink()
    return ["export", str(dest / "mixture.json"), "--format", "megatron"]


def _published_mixture(w: World) -> str:
    latest = json.loads((w.store / "mixtures" / "latest.json").read_text())["id"]
    return str(w.store / "mixtures" / latest / "mixture.json")


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _unlink_all(files: list[Path]) -> None:
    for f in files:
        f.unlink()


def _touch(path: Path) -> Path:
    path.write_text("not a folder\n")
    return path


def _env(w: World, **values: str) -> None:
    w.extra_env.update(values)


JINJA_SHELL = (
    "name: evil\nprompt: \"{{{{ cycler.__init__.__globals__.os.popen('touch {tmp}/pwned').read() }}}}\"\n"
    "template: jinja\nchoices: ['No', 'Yes']\nlabel: label\neval_split: validation\n"
    "query_split: validation\nfiles:\n  validation: {tmp}/data.jsonl\n"
)
ROWS = '{"q": "a", "label": 0}\n{"q": "b", "label": 1}\n'

CASES = [
    # config: caught at load, before Prefect starts (exit 2)
    Case(
        "config file missing", lambda w: ["remix", str(w.tmp / "nope.yaml")], "ConfigError", ("nope.yaml",), 2
    ),
    Case("config YAML syntax", _yaml("store: [unclosed\n"), "ConfigError", ("run.yaml",), 2),
    Case("config is a list", _yaml("- store\n- corpus\n"), "ConfigError", ("run.yaml", "mapping"), 2),
    Case("unknown top-level key", _remix(storre="x"), "ConfigError", ("storre",), 2),
    Case(
        "unknown field in a section",
        _remix(influence={"estimater": "datainf"}),
        "ConfigError",
        ("estimater",),
        2,
    ),
    Case("wrong type", _remix(benchmarks={"eval_limit": "many"}), "ConfigError", ("eval_limit",), 2),
    Case("zero documents a shard", _remix(corpus={"shard_docs": 0}), "ConfigError", ("shard_docs",), 2),
    Case("unknown estimator", _remix(influence={"estimator": "tracin"}), "ConfigError", ("tracin",), 2),
    Case(
        "unknown selection strategy", _remix(selection={"strategy": "oracle"}), "ConfigError", ("oracle",), 2
    ),
    Case("interval level above 1", _remix(aggregation={"ci": 1.5}), "ConfigError", ("aggregation.ci",), 2),
    Case("dask without a scheduler", _remix(execution={"mode": "dask"}), "ConfigError", ("dask_address",), 2),
    Case(
        "misspelt benchmark", _remix(benchmarks={"names": ["arc_easy", "pica"]}), "ConfigError", ("pica",), 2
    ),
    Case("no benchmark at all", _remix(benchmarks={"names": []}), "ConfigError", ("benchmarks.names",), 2),
    Case(
        "misspelt export format", _remix(publish={"exports": ["megatorn"]}), "ConfigError", ("megatorn",), 2
    ),
    Case(
        "no checkpoints section",
        _yaml("store: {store}\ncorpus: {{uri: x}}\n"),
        "ConfigError",
        ("checkpoints",),
        2,
    ),
    # checkpoints: the run starts and fails (exit 1)
    Case(
        "checkpoint folder missing",
        _remix(checkpoints={"uri": "/nonexistent/run"}),
        "CheckpointError",
        ("/nonexistent/run",),
        1,
    ),
    Case(
        "checkpoint folder empty",
        lambda w: ["remix", str(w.config(checkpoints={"uri": str(_mkdir(w.tmp / "empty"))}))],
        "CheckpointError",
        ("empty",),
        1,
    ),
    Case(
        "revision matches no folder",
        _remix(checkpoints={"revision": ["checkpoint-7"]}),
        "CheckpointError",
        ("checkpoint-7",),
        1,
    ),
    Case(
        "weights file truncated",
        _checkpoint_case(_truncate_weights),
        "CheckpointError",
        ("model.safetensors",),
        1,
    ),
    Case(
        "weights of another shape",
        _checkpoint_case(_wrong_shape),
        "CheckpointError",
        ("checkpoint-", "embed_tokens"),
        1,
    ),
    Case("config.json not JSON", _checkpoint_case(_bad_config_json), "CheckpointError", ("config.json",), 1),
    Case("unknown model_type", _checkpoint_case(_unknown_model_type), "CheckpointError", ("llamma",), 1),
    Case("tokenizer missing", _checkpoint_case(_no_tokenizer), "CheckpointError", ("tokenizer",), 1),
    Case("two folders of one step", _same_step_twice, "CheckpointError", ("checkpoint-", "step"), 1),
    Case(
        "tokenizer larger than the embedding",
        _vocab_too_large,
        "CheckpointError",
        ("tokenizer has", "embedding"),
        1,
    ),
    # corpus (exit 1)
    Case(
        "corpus folder missing",
        _remix(corpus={"uri": "/nonexistent/corpus"}),
        "CorpusError",
        ("/nonexistent/corpus",),
        1,
    ),
    Case(
        "empty corpus file",
        _corpus_case(_write("math/part-0.jsonl", "")),
        "CorpusError",
        ("math/part-0.jsonl",),
        1,
    ),
    Case(
        "blank-lines-only file",
        _corpus_case(_write("math/part-0.jsonl", "\n\n  \n")),
        "CorpusError",
        ("math/part-0.jsonl",),
        1,
    ),
    Case(
        "domain folder without files",
        _corpus_case(lambda r: (r / "math").mkdir()),
        "CorpusError",
        ("math",),
        1,
    ),
    Case(
        "a line that is not JSON",
        _corpus_case(_write("math/part-0.jsonl", '{"text": "ok"}\n{"text": oops}\n')),
        "CorpusError",
        ("part-0.jsonl", "2"),
        1,
    ),
    Case(
        "document without its text field",
        _corpus_case(_write("math/part-0.jsonl", '{"body": "x"}\n')),
        "CorpusError",
        ("part-0.jsonl", "text"),
        1,
    ),
    Case(
        "text that is not a string",
        _corpus_case(_write("math/part-0.jsonl", '{"text": 42}\n')),
        "CorpusError",
        ("part-0.jsonl", "text"),
        1,
    ),
    Case(
        "a .gz that is not gzip",
        _corpus_case(_write("math/part-0.jsonl.gz", b"plain bytes, not gzip\n")),
        "CorpusError",
        ("part-0.jsonl.gz",),
        1,
    ),
    Case(
        "a parquet that is not parquet",
        _corpus_case(_write("math/part-0.parquet", b"PAR1 garbage")),
        "CorpusError",
        ("part-0.parquet",),
        1,
    ),
    Case("only files of another format", _corpus_case(_only_txt), "CorpusError", (".txt",), 1),
    # benchmarks
    Case(
        "benchmark data folder missing",
        _remix(benchmarks={"data_dir": "/nonexistent/data"}),
        "BenchmarkError",
        ("/nonexistent/data",),
        1,
    ),
    Case(
        "benchmark split file missing",
        _benchmark_case(_unlink_all),
        "BenchmarkError",
        ("arc_easy", ".jsonl"),
        1,
    ),
    Case(
        "benchmark line not JSON",
        _benchmark_case(_rows(lambda r: '{"id": oops')),
        "BenchmarkError",
        ("arc_easy", "line 1"),
        1,
    ),
    Case(
        "benchmark row without its answer",
        _benchmark_case(_rows(lambda r: {k: v for k, v in r.items() if k != "answerKey"})),
        "BenchmarkError",
        ("arc_easy", "answerKey"),
        1,
    ),
    Case(
        "benchmark answer not among the choices",
        _benchmark_case(_rows(lambda r: {**r, "answerKey": "Q"})),
        "BenchmarkError",
        ("arc_easy", "Q"),
        1,
    ),
    Case(
        "custom benchmark YAML missing",
        _remix(benchmarks={"custom": ["/nonexistent/mine.yaml"]}),
        "BenchmarkError",
        ("/nonexistent/mine.yaml",),
        1,
    ),
    Case(
        "custom benchmark without a prompt",
        _custom_yaml("name: mine\nchoices: [a, b]\nlabel: label\n"),
        "BenchmarkError",
        ("mine.yaml", "prompt"),
        1,
    ),
    Case(
        "custom jinja prompt runs a shell command",
        _custom_yaml(JINJA_SHELL, ROWS),
        "BenchmarkError",
        ("mine.yaml", "unsafe"),
        1,
    ),
    # store
    Case(
        "store is a file",
        lambda w: ["remix", str(w.config(store=str(_touch(w.tmp / "a-file"))))],
        "StorageError",
        ("a-file",),
        1,
    ),
    Case(
        "S3 endpoint down",
        lambda w: (
            _env(w, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
            or ["remix", str(w.config(store="s3://automixer-down/x"))]
        ),
        "StorageError",
        ("s3://automixer-down/x",),
        1,
    ),
    # export and the other commands (exit 2)
    Case(
        "export of a missing mixture",
        lambda w: ["export", str(w.tmp / "nope" / "mixture.json"), "--format", "megatron"],
        "StorageError",
        ("nope",),
        2,
    ),
    Case("export of a half-published mixture", _incomplete_mixture, "StorageError", ("manifest",), 2),
    Case(
        "export in an unknown format",
        lambda w: ["export", _published_mixture(w), "--format", "megatorn"],
        "ConfigError",
        ("megatorn",),
        2,
    ),
    Case(
        "validate a mixture that is not there",
        lambda w: ["validate", str(w.config()), "--mixture", str(w.tmp / "nope.json")],
        "StorageError",
        ("nope.json", "no mixture document"),
        1,
    ),
    Case(
        "proxy-train on a mixture that is not there",
        lambda w: [
            "proxy-train",
            "--corpus",
            str(w.corpus),
            "--out",
            str(w.tmp / "p"),
            "--mixture",
            str(w.tmp / "nope.json"),
        ],
        "ConfigError",
        ("nope.json", "does not exist"),
        1,
    ),
    Case(
        "discover a folder that is not there",
        lambda w: ["discover", str(w.tmp / "nope")],
        "CheckpointError",
        ("nope",),
        2,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_typed_error_and_loses_nothing(
    case: Case, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(world.store)
    args = case.make(world)
    for k, v in world.extra_env.items():
        monkeypatch.setenv(k, v)
    result = runner.invoke(app, args)
    out = result.output
    assert "error:" in out, out
    last = " ".join(out[out.rindex("error:") :].split())
    assert result.exit_code == case.exit_code, out
    assert last.startswith(f"error: {case.error}: "), last
    for name in case.names:
        assert name.lower() in last.lower(), (name, last)
    assert "Fix: " in last, last
    assert "Traceback" not in out, out
    assert _snapshot(world.store) == before
    assert not (world.tmp / "pwned").exists()
    if table := os.environ.get("AUTOMIXER_CATALOGUE_TABLE"):  # the table of the closing note
        first = last.removeprefix(f"error: {case.error}: ").split(". ")[0].replace(str(world.tmp), "<tmp>")
        with open(table, "a") as f:
            f.write(f"| {case.id} | {case.exit_code} | {case.error} | {first[:140]} | unchanged |\n")


def test_the_catalogue_is_long_enough() -> None:
    """Issue 9 asked for the fourteen reported rows and at least thirty more."""
    assert len(CASES) >= 44
    assert len({c.id for c in CASES}) == len(CASES)
