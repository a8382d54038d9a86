"""Parity with lm-evaluation-harness: same prompts, same log-likelihoods, same acc and acc_norm.

lm-eval runs its own task YAMLs (included from the installed wheel) on the very rows we evaluate,
written to temporary jsonl files (``dataset_path: json``), with its ``HFLM`` model class on the
same checkpoint folder. BoolQ rows get the integer ``label`` that lm-eval's super_glue task reads.
A few hub-style HellaSwag rows (bracket tags, a non-empty ``ctx_b``) are added so its
preprocessing is compared too. Offline: nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from automixer_core.benchmarks import (
    BenchmarkSpec,
    MultipleChoiceInstance,
    build_instances,
    get_task,
    load_benchmark,
    read_jsonl_split,
)
from automixer_core.benchmarks.loading import SplitRows
from automixer_core.evaluation import BenchmarkResult, EvalConfig, encode_pairs, evaluate_benchmark

pytestmark = [pytest.mark.slow, pytest.mark.data]

ROWS = {
    "arc_easy": 200,
    "arc_challenge": 200,
    "boolq": 200,
    "hellaswag": 200,
    "piqa": 200,
    "social_i_qa": 200,
    "winogrande": 200,
    "openbookqa": 200,
    "commonsense_qa": 200,
}
"""Questions per benchmark (the whole file runs in about 70 s on 2 busy cores)."""

HUB_STYLE_HELLASWAG = [
    {
        "activity_label": "Home and Garden",
        "ctx_a": "[header] How to plant a tree [title] Dig a hole.",
        "ctx_b": "THEN you",
        "endings": ["[step] water it  well.", " pick  a spot [substeps] first.", "[title] Wait.", "run away"],
        "label": "1",
    },
    {
        "activity_label": "Sports",
        "ctx_a": "A man runs [substeps] fast.",
        "ctx_b": "he",
        "endings": ["jumps.", "falls  down.", "stops [step] now.", "wins."],
        "label": "0",
    },
]


class Parity:
    """Both sides' results per benchmark."""

    def __init__(self) -> None:
        self.instances: dict[str, list[MultipleChoiceInstance]] = {}
        self.ours: dict[str, BenchmarkResult] = {}
        self.theirs: dict[str, dict[str, Any]] = {}
        self.samples: dict[str, list[dict[str, Any]]] = {}


def _rows_for_lm_eval(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if name == "boolq":  # super_glue/boolq reads an integer label
        return [dict(r, label=int(r["answer"])) for r in rows]
    return rows


@pytest.fixture(scope="module")
def parity(tiny_checkpoint: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Parity:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = tmp_path_factory.mktemp("lm-eval-parity")
    (tmp / "tasks").mkdir()
    tasks_root = Path(lm_eval.__file__).parent / "tasks"
    out = Parity()
    for name, n in ROWS.items():
        task = get_task(name)
        bench = load_benchmark(BenchmarkSpec(name=name, data_dir=shared_data, eval_limit=n, seed=0))
        split = read_jsonl_split(Path(bench.sources[bench.eval_split]), bench.eval_split)
        rows = [split.rows[i.doc_id] for i in bench.eval_instances]
        if name == "hellaswag":
            rows += HUB_STYLE_HELLASWAG
        data = tmp / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in _rows_for_lm_eval(name, rows)))
        # our questions from the same rows, in the same order: doc_id = lm-eval's doc_id
        out.instances[name] = build_instances(task, SplitRows("validation", str(data), "", rows))
        assert task.lm_eval_yaml is not None
        cfg = {
            "include": str(tasks_root / task.lm_eval_yaml),
            "task": f"amx_parity_{name}",
            "tag": [],
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {"validation": str(data)}},
            "training_split": None,
            "validation_split": "validation",
            "test_split": None,
            "fewshot_split": None,
            "metric_list": [
                {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
            ],
        }
        (tmp / "tasks" / f"{name}.yaml").write_text(yaml.safe_dump(cfg))

    lm = HFLM(pretrained=str(tiny_checkpoint), device="cpu", batch_size=32)
    res = lm_eval.simple_evaluate(
        model=lm,
        tasks=[f"amx_parity_{name}" for name in ROWS],
        task_manager=TaskManager(include_path=str(tmp / "tasks"), include_defaults=False),
        num_fewshot=0,
        log_samples=True,
        bootstrap_iters=1,  # > 0 so lm-eval reports its closed-form stderr of the mean
    )
    assert res is not None
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint).eval()
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    for name in ROWS:
        out.theirs[name] = res["results"][f"amx_parity_{name}"]
        out.samples[name] = sorted(res["samples"][f"amx_parity_{name}"], key=lambda s: s["doc_id"])
        out.ours[name] = evaluate_benchmark(model, tok, out.instances[name], config=EvalConfig(batch_size=32))
    return out


@pytest.mark.parametrize("name", list(ROWS))
def test_same_requests_logprobs_and_accuracy(parity: Parity, name: str) -> None:
    insts = parity.instances[name]
    samples = parity.samples[name]
    ours = parity.ours[name]
    assert [s["doc_id"] for s in samples] == list(range(len(insts)))
    # the prompts: lm-eval's (context, continuation) arguments, request for request
    for inst, s in zip(insts, samples, strict=True):
        assert [tuple(a) for a in s["arguments"]] == inst.requests(), inst.doc_id
    # per-example log-likelihoods and greedy flags
    theirs_ll = np.array([x[0] for s in samples for x in s["filtered_resps"]])
    ours_ll = np.array([x for lls in ours.per_example["logprobs"] for x in lls])
    np.testing.assert_allclose(ours_ll, theirs_ll, rtol=1e-6, atol=1e-4)
    assert [bool(x[1]) for s in samples for x in s["filtered_resps"]] == [
        g for flags in ours.per_example["is_greedy"] for g in flags
    ]
    # per-example and aggregate accuracy: exactly equal
    assert ours.per_example["correct"].tolist() == [s["acc"] for s in samples]
    assert ours.per_example["correct_norm"].tolist() == [s["acc_norm"] for s in samples]
    assert ours.acc == parity.theirs[name]["acc,none"]
    assert ours.acc_norm == parity.theirs[name]["acc_norm,none"]
    assert ours.n == parity.theirs[name]["sample_len"] == len(insts)
    assert ours.acc_stderr == pytest.approx(parity.theirs[name]["acc_stderr,none"], rel=1e-9)
    assert ours.acc_norm_stderr == pytest.approx(parity.theirs[name]["acc_norm_stderr,none"], rel=1e-9)


def test_encode_pair_matches_hflm(tiny_checkpoint: Path) -> None:
    """Our tokenization equals HFLM._encode_pair, with the tokenizer's default and with a BOS-adding one."""
    from lm_eval.models.huggingface import HFLM
    from tokenizers import processors
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint)
    pairs = [
        ("Question: why?\nAnswer:", " because"),
        ("Answer: ", "yes"),
        ("tabs\t\n ", " x"),
        ("<|endoftext|>starts with BOS", " ok"),
        ("Sarah was a better surgeon than Maria so Maria", " always got the easier cases."),
        ("Ünïcödé — ", "dash"),
    ]
    plain = AutoTokenizer.from_pretrained(tiny_checkpoint)
    bos = AutoTokenizer.from_pretrained(tiny_checkpoint)
    bos.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)]
    )
    assert bos("hi")["input_ids"][0] == 0 and plain("hi")["input_ids"][0] != 0
    for tok in (plain, bos):
        for add_bos in (None, False, True):
            lm = HFLM(pretrained=model, tokenizer=tok, device="cpu", batch_size=1, add_bos_token=add_bos)
            expected = [lm._encode_pair(c, t) for c, t in pairs]
            assert encode_pairs(tok, pairs, add_bos_token=add_bos) == expected
