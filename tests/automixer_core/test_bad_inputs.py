"""Bad inputs fail early with a typed error that names the thing and the fix (no raw Python errors).

Benchmarks (unsafe jinja prompt, no benchmark at all, a missing split file), checkpoints (a
non-causal model, two folders of one step, a tokenizer larger than the embedding, non-finite
weights), corpus (empty files and folders) and the influence engine (a selected module that never
runs, or whose output never reaches the loss; the share of parameters a layer selection covers).
All with real tiny models and files; nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertForMaskedLM, LlamaForCausalLM, PreTrainedTokenizerFast

from automixer_core.benchmarks import BenchmarkSpec, benchmark_data_digest, load_benchmark
from automixer_core.checkpoints import (
    discover_checkpoints,
    hub_checkpoints,
    load_checkpoint,
    non_causal_reason,
    nonfinite_parameters,
)
from automixer_core.config import BenchmarksConfig, CorpusConfig, parse_config
from automixer_core.corpus import make_shards
from automixer_core.errors import BenchmarkError, CheckpointError, ConfigError, CorpusError, ModelError
from automixer_core.influence import InfluenceConfig, QueryVectors, build_query_vectors, score_documents
from automixer_core.influence.params import selected_parameter_fraction
from tests.automixer_core.influence.conftest import WINDOW, make_docs, make_model, make_queries
from tests.automixer_core.influence.conftest import _one_thread as _one_thread  # autouse here too
from tests.fixtures_models import tiny_llama_config


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------------------------
# benchmarks


@pytest.mark.parametrize(
    "attack",
    [
        "cycler.__init__.__globals__.os.popen('touch {marker}').read()",
        "self.__init__.__globals__.__builtins__.__import__('os').system('touch {marker}')",
        "lipsum.__globals__['os'].system('touch {marker}')",
        "''.__class__.__mro__[1].__subclasses__()",
    ],
)
def test_jinja_prompt_is_sandboxed(tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    _write_jsonl(tmp_path / "data.jsonl", [{"q": f"question {i}", "label": i % 2} for i in range(4)])
    expr = attack.format(marker=marker)
    yaml_path = tmp_path / "evil.yaml"
    yaml_path.write_text(
        "name: evil_bench\n"
        f"prompt: {json.dumps('{{ ' + expr + ' }} {{ q }}')}\n"
        "template: jinja\n"
        'choices: ["No", "Yes"]\n'
        "label: label\n"
        "eval_split: validation\n"
        "query_split: validation\n"
        "files:\n  validation: data.jsonl\n"
    )
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(BenchmarkSpec(name="evil_bench", custom_yaml=yaml_path))
    msg = str(e.value)
    assert "'evil_bench'" in msg and str(yaml_path) in msg and "unsafe" in msg
    assert "Fix: remove the access to Python internals" in msg and "'prompt'" in msg
    assert not marker.exists()


def test_plain_jinja_prompt_still_renders_in_the_sandbox(tmp_path: Path) -> None:
    _write_jsonl(
        tmp_path / "data.jsonl", [{"q": f" question {i} ", "c": ["a", "b"], "label": i % 2} for i in range(4)]
    )
    yaml_path = tmp_path / "ok.yaml"
    yaml_path.write_text(
        "name: ok_bench\n"
        "prompt: \"Q: {{ q | trim }} ({{ c[0] }}/{{ c | join(',') }})\\nA:\"\n"
        "template: jinja\nchoices: c\nlabel: label\neval_split: validation\nquery_split: validation\n"
        "files:\n  validation: data.jsonl\n"
    )
    bench = load_benchmark(BenchmarkSpec(name="ok_bench", custom_yaml=yaml_path, query_limit=1))
    assert (
        bench.eval_instances[0].contexts[0].startswith("Q: question ")
        and "(a/a,b)" in (bench.eval_instances[0].contexts[0])
    )


def test_jinja_syntax_error_names_the_yaml(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "data.jsonl", [{"q": "x", "label": 0}, {"q": "y", "label": 1}])
    yaml_path = tmp_path / "broken.yaml"
    yaml_path.write_text(
        'name: broken_bench\nprompt: "{{ q "\ntemplate: jinja\nchoices: ["No", "Yes"]\nlabel: label\n'
        "eval_split: validation\nquery_split: validation\nfiles:\n  validation: data.jsonl\n"
    )
    with pytest.raises(BenchmarkError, match="not a valid template") as e:
        load_benchmark(BenchmarkSpec(name="broken_bench", custom_yaml=yaml_path))
    assert str(yaml_path) in str(e.value) and "Fix: correct 'prompt'" in str(e.value)


def test_empty_benchmark_list_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"checkpoints": {"uri": "runs/x"}, "benchmarks": {"names": []}}, source="run.yaml")
    msg = str(e.value)
    assert "run.yaml" in msg and "'benchmarks'" in msg and "no benchmark to evaluate" in msg
    assert "benchmarks.names" in msg and "benchmarks.custom" in msg
    # custom benchmarks alone are fine
    assert BenchmarksConfig(names=[], custom=[Path("b.yaml")]).custom == [Path("b.yaml")]


def test_missing_split_file_names_benchmark_split_and_path(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    src = shared_data / "benchmarks" / "piqa" / "validation.jsonl"
    (root / "benchmarks" / "piqa").mkdir(parents=True)
    shutil.copyfile(src, root / "benchmarks" / "piqa" / "validation.jsonl")
    spec = BenchmarkSpec(name="piqa", data_dir=root, eval_split="validation", query_split="train")
    missing = root / "benchmarks" / "piqa" / "train.jsonl"
    for call in (benchmark_data_digest, load_benchmark):
        with pytest.raises(BenchmarkError) as e:
            call(spec)
        msg = str(e.value)
        assert "Benchmark 'piqa', split 'train'" in msg and str(missing) in msg
        assert "Fix: add the file" in msg and "eval_split/query_split" in msg and "(validation)" in msg


def test_custom_benchmark_missing_split_file_points_at_its_yaml(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "val.jsonl", [{"q": "x", "label": 0}, {"q": "y", "label": 1}])
    yaml_path = tmp_path / "mine.yaml"
    yaml_path.write_text(
        'name: mine\nprompt: "{q}"\nchoices: ["No", "Yes"]\nlabel: label\n'
        "eval_split: validation\nquery_split: train\n"
        "files:\n  validation: val.jsonl\n  train: train.jsonl\n"
    )
    with pytest.raises(BenchmarkError) as e:
        benchmark_data_digest(BenchmarkSpec(name="mine", custom_yaml=yaml_path))
    msg = str(e.value)
    assert "Benchmark 'mine', split 'train'" in msg and str(tmp_path / "train.jsonl") in msg
    assert f"eval_split/query_split in {yaml_path}" in msg


# --------------------------------------------------------------------------------------------
# checkpoints


def test_masked_lm_checkpoint_is_refused(tmp_path: Path) -> None:
    config = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    folder = tmp_path / "run" / "checkpoint-10"
    BertForMaskedLM(config).save_pretrained(folder)
    assert [c.step for c in discover_checkpoints(str(tmp_path / "run")).checkpoints] == [10]
    with pytest.raises(ModelError) as e:
        load_checkpoint(folder)
    msg = str(e.value)
    assert str(folder) in msg and "not a causal language model" in msg and "BertForMaskedLM" in msg
    assert "causal (decoder-only) LM" in msg and "Fix: point checkpoints.uri" in msg
    # a BERT configured as a decoder, and the usual decoder-only families, pass the check
    assert non_causal_reason(BertConfig(is_decoder=True, architectures=["BertLMHeadModel"])) is None
    assert non_causal_reason(tiny_llama_config(32)) is None


def test_two_folders_of_one_step_are_an_error(tiny_checkpoint: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    for name in ("checkpoint-480", "step480", "checkpoint-240"):
        shutil.copytree(tiny_checkpoint, run / name)
    with pytest.raises(CheckpointError) as e:
        discover_checkpoints(str(run))
    msg = str(e.value)
    assert "step 480" in msg and str(run / "checkpoint-480") in msg and str(run / "step480") in msg
    assert "checkpoint-240" not in msg.split("Expected")[0] and "revision=" in msg
    # keeping one of them resolves it
    kept = discover_checkpoints(str(run), revision=["checkpoint-240", "step480"])
    assert [c.name for c in kept.checkpoints] == ["checkpoint-240", "step480"]
    # hub branches that name the same step, too (revisions naming no step keep step 0)
    with pytest.raises(CheckpointError, match="step 1000"):
        hub_checkpoints("org/m", [("step1000", "a" * 40), ("step_1000", "b" * 40)])
    both = hub_checkpoints("org/m", [("main", "a" * 40), ("dev", "b" * 40)], revision=["main", "dev"])
    assert both.steps == [0, 0]


def test_tokenizer_larger_than_the_embedding_is_refused_at_load(
    tiny_tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    rows = len(tiny_tokenizer) - 48
    folder = tmp_path / "checkpoint-5"
    LlamaForCausalLM(tiny_llama_config(rows)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(folder)
    msg = str(e.value)
    assert str(folder) in msg and f"{len(tiny_tokenizer)} tokens" in msg and f"only {rows} rows" in msg
    assert "resize_token_embeddings" in msg and "Fix:" in msg


def test_nonfinite_parameters_names_nan_and_inf(tiny_checkpoint: Path) -> None:
    model, _ = load_checkpoint(tiny_checkpoint)  # loads: divergence is for selection to judge
    assert nonfinite_parameters(model) == []
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")
        model.model.norm.weight[3] = float("-inf")
        model.model.embed_tokens.weight[7, 1] = float("inf")  # tied with lm_head: named once
    assert nonfinite_parameters(model) == [
        "model.embed_tokens.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
    ]


# --------------------------------------------------------------------------------------------
# corpus


def _empty_corpus(root: Path) -> None:
    _write_jsonl(root / "good" / "part-0.jsonl", [{"text": f"doc {i}"} for i in range(5)])
    (root / "good" / "part-1.jsonl").write_text("")
    (root / "blank" / "part-0.jsonl").parent.mkdir(parents=True)
    (root / "blank" / "part-0.jsonl").write_text("\n  \n\n")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), root / "good" / "part-2.parquet")
    (root / "nothing" / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()


def test_empty_corpus_files_and_folders_are_named(tmp_path: Path) -> None:
    _empty_corpus(tmp_path)
    with pytest.raises(CorpusError) as e:
        make_shards(str(tmp_path), 10)
    msg = str(e.value)
    assert "3 empty file(s)" in msg
    for name in ("blank/part-0.jsonl", "good/part-1.jsonl", "good/part-2.parquet", "nothing/"):
        assert name in msg
    assert "nothing/sub" not in msg and ".hidden" not in msg and "good/part-0.jsonl" not in msg
    assert "corpus.allow_empty: true" in msg


def test_allow_empty_skips_them_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _empty_corpus(tmp_path)
    with caplog.at_level(logging.WARNING, logger="automixer_core.corpus"):
        shards = make_shards(str(tmp_path), 10, allow_empty=True)
    assert [(s.file, s.start, s.stop) for s in shards] == [("good/part-0.jsonl", 0, 5)]
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "blank/part-0.jsonl" in warned and "good/part-2.parquet" in warned and "nothing/" in warned
    # only empty files: nothing to score even when allowed
    only_empty = tmp_path / "only"
    (only_empty / "a").mkdir(parents=True)
    (only_empty / "a" / "x.jsonl").write_text("\n")
    with pytest.raises(CorpusError, match="holds no documents"):
        make_shards(str(only_empty), 10, allow_empty=True)
    # the option is part of the corpus config, off by default
    assert CorpusConfig(uri="c").allow_empty is False
    assert CorpusConfig(uri="c", allow_empty=True).allow_empty is True


# --------------------------------------------------------------------------------------------
# influence engine


class _BypassedMLP(nn.Module):
    """An MLP wrapper with an extra projection whose weight is read directly (or whose output is dropped)."""

    def __init__(self, inner: nn.Module, dim: int, mode: str) -> None:
        super().__init__()
        self.inner = inner
        self.proj = nn.Linear(dim, dim, bias=False)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "direct":  # the module is never called: its hooks never fire
            return self.inner(x) + F.linear(x, self.proj.weight)
        _ = self.proj(x)  # called, but its output never reaches the loss
        return self.inner(x)


def _bypassed_llama(mode: str) -> nn.Module:
    model: Any = make_model("llama_untied")
    layer = model.model.layers[0]
    torch.manual_seed(3)
    layer.mlp = _BypassedMLP(layer.mlp, 32, mode)
    return model


def test_module_that_never_runs_fails_the_batch() -> None:
    model = _bypassed_llama("direct")
    layers = ["model.layers.0.mlp.proj", "model.layers.1.mlp.down_proj"]
    cfg = InfluenceConfig(estimator="grad_dot", layers=layers, max_length=WINDOW)
    with pytest.raises(ModelError) as e:
        build_query_vectors(model, {"arc": make_queries()["arc"]}, cfg)
    msg = str(e.value)
    assert "'model.layers.0.mlp.proj'" in msg and "did not run in the forward pass" in msg
    assert (
        "down_proj" not in msg.split("Expected")[0]
        and "F.linear" in msg
        and "Fix: select other layers" in msg
    )
    # scoring checks every batch too
    qv = QueryVectors(
        names=["arc"],
        blocks={
            "model.layers.0.mlp.proj.weight": torch.zeros(1, 32, 32),
            "model.layers.1.mlp.down_proj.weight": torch.zeros(1, 32, 64),
        },
        estimator="grad_dot",
        layers=layers,
    )
    with pytest.raises(ModelError, match=r"'model\.layers\.0\.mlp\.proj'"):
        score_documents(model, [(str(i), d) for i, d in enumerate(make_docs())], qv, cfg)


def test_module_whose_output_is_dropped_fails_the_batch() -> None:
    model = _bypassed_llama("dropped")
    cfg = InfluenceConfig(
        estimator="grad_dot", layers=["model.layers.0.mlp.proj", "lm_head"], max_length=WINDOW
    )
    with pytest.raises(ModelError) as e:
        build_query_vectors(model, {"arc": make_queries()["arc"]}, cfg)
    msg = str(e.value)
    assert "'model.layers.0.mlp.proj'" in msg and "does not reach the loss" in msg
    assert "lm_head" not in msg.split("Expected")[0] and "Fix:" in msg
    # also when it is the only selected module (then nothing at all reaches the loss)
    alone = InfluenceConfig(estimator="grad_dot", layers=["model.layers.0.mlp.proj"], max_length=WINDOW)
    with pytest.raises(ModelError, match="does not reach the loss"):
        build_query_vectors(model, {"arc": make_queries()["arc"]}, alone)


@pytest.mark.parametrize("arch", ["llama_tied", "llama_untied"])
def test_selected_parameter_fraction(arch: str) -> None:
    model: Any = make_model(arch)
    total = sum(p.numel() for p in model.parameters())  # tied matrix counted once
    emb = model.model.embed_tokens.weight.numel()
    head = 0 if arch == "llama_tied" else model.lm_head.weight.numel()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    if arch == "llama_tied":
        assert model.lm_head.weight is model.model.embed_tokens.weight
    embed_head = selected_parameter_fraction(model, "embed_head")
    all_linear = selected_parameter_fraction(model, "all_linear")
    assert embed_head == pytest.approx((emb + head) / total)
    assert all_linear == pytest.approx(linear / total)  # for tied, lm_head *is* the embedding
    assert 0 < embed_head < all_linear < 1 and all_linear > 0.8
    one = selected_parameter_fraction(model, ["model.layers.0.self_attn.q_proj"])
    assert one == pytest.approx(32 * 32 / total)
    # recorded with the query vectors and the scores
    cfg = InfluenceConfig(estimator="grad_dot", layers="embed_head", max_length=WINDOW)
    qv = build_query_vectors(model, {"arc": make_queries()["arc"]}, cfg)
    assert float(qv.metadata["parameter_fraction"]) == pytest.approx(embed_head)
    res = score_documents(model, [("d0", make_docs()[3])], qv, cfg)
    assert float(res.metadata["parameter_fraction"]) == pytest.approx(embed_head)


def test_an_unreachable_s3_endpoint_is_one_storage_error_with_bounded_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Port 9 on loopback refuses connections: the probe names the store and the fix, and the S3
    client is configured to give up after 2 attempts with a 3 s connect timeout (the defaults of
    botocore and s3fs multiply into 25-38 s)."""
    from automixer_core.errors import StorageError
    from automixer_core.store import Store, storage_options_from_env

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    opts = storage_options_from_env("s3")
    assert opts["config_kwargs"]["retries"]["total_max_attempts"] == 2
    assert opts["config_kwargs"]["connect_timeout"] == 3.0
    with pytest.raises(
        StorageError, match=r"s3://automixer-down/x.*cannot be written.*EndpointConnectionError"
    ):
        Store("s3://automixer-down/x").check_writable()
