"""Evaluation engine: exactness against a brute-force per-request forward, invariances, metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    BloomConfig,
    BloomForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
)

from automixer_core.benchmarks import BenchmarkSpec, MultipleChoiceInstance, load_instances
from automixer_core.errors import ModelError
from automixer_core.evaluation import (
    EvalConfig,
    LoglikelihoodResult,
    ScoreStats,
    encode_instance,
    encode_pair,
    encode_pairs,
    evaluate_benchmark,
    gold_pairs,
    loglikelihood,
    loglikelihood_tokens,
    mean_stderr,
    resolve_max_length,
    score_instances,
    summarize,
)


def brute_force(
    model: torch.nn.Module, ctx: list[int], cont: list[int], max_length: int
) -> LoglikelihoodResult:
    """One request alone: no batching, no padding, no packing, no cache; lm-eval's left truncation."""
    full = (ctx + cont)[-(max_length + 1) :]
    inp = torch.tensor([full[:-1]])
    with torch.no_grad():
        logits = model(input_ids=inp).logits[0]  # [T, V]
    logp = torch.log_softmax(logits.double(), dim=-1)[-len(cont) :]  # [n, V]
    target = torch.tensor(cont)
    lp = logp.gather(1, target[:, None]).sum().item()
    return LoglikelihoodResult(lp, bool((logp.argmax(-1) == target).all()))


def _instances(shared_data: Path | None, per_benchmark: int = 4) -> list[MultipleChoiceInstance]:
    """A mix of real questions (shared context, winogrande's shared continuation) and edge cases."""
    out: list[MultipleChoiceInstance] = []
    if shared_data is not None:
        for name in ("arc_easy", "hellaswag", "winogrande", "boolq"):
            out += load_instances(BenchmarkSpec(name=name, data_dir=shared_data), limit=per_benchmark, seed=1)
    edge = [
        # duplicate choices, a choice that is a prefix of another, trailing spaces in the context
        MultipleChoiceInstance(
            900, ("The cat sat on the",) * 4, (" mat", " mat", " mat.", " mat. Then"), 2, (3, 3, 4, 9)
        ),
        MultipleChoiceInstance(901, ("Answer:  ",) * 2, ("yes", "no"), 0, (3, 2)),
        # contexts differing at the very first token
        MultipleChoiceInstance(902, ("Alpha beta", "Zeta beta"), (" gamma", " gamma"), 1, (10, 9)),
        MultipleChoiceInstance(903, ("word " * 130,) * 2, (" end of a long one", " fin"), 0, (17, 3)),
    ]
    return out + edge


@pytest.fixture(scope="module")
def llama(tiny_checkpoint: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(tiny_checkpoint).eval()


@pytest.fixture(scope="module")
def gpt2(tiny_tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    torch.manual_seed(1)
    cfg = GPT2Config(vocab_size=len(tiny_tokenizer), n_positions=96, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(cfg).eval()


def _check_against_brute_force(
    model: torch.nn.Module,
    tok: PreTrainedTokenizerFast,
    insts: list[MultipleChoiceInstance],
    cfg: EvalConfig,
    atol: float,
    rtol: float = 0.0,
    strategies: tuple[str, ...] = ("shared_prefix",),
) -> str:
    """Assert every request's score equals the brute-force one, for each strategy; return the
    strategy that ran last (``per_request`` when packing was refused)."""
    max_len = cfg.max_length or resolve_max_length(model, tok)
    refs = [[brute_force(model, c, t, max_len) for c, t in encode_instance(tok, inst)] for inst in insts]
    ran = ""
    for strategy in strategies:
        stats = ScoreStats()
        got = score_instances(model, tok, insts, cfg.model_copy(update={"strategy": strategy}), stats=stats)
        for inst, res, ref in zip(insts, got, refs, strict=True):
            assert len(res) == inst.n_choices
            for r, b in zip(res, ref, strict=True):
                assert r.logprob == pytest.approx(b.logprob, abs=atol, rel=rtol), (
                    strategy,
                    inst.doc_id,
                    r,
                    b,
                )
                assert r.is_greedy == b.is_greedy
        ran = stats.strategy
    return ran


def test_matches_brute_force_float64(
    llama: torch.nn.Module, tiny_tokenizer: PreTrainedTokenizerFast, shared_data: Path
) -> None:
    """In float64 both engines equal the unbatched forward to 1e-9 (float32 would hide bugs under noise)."""
    model = llama.double()
    insts = _instances(shared_data, per_benchmark=2)
    try:
        # max_length 100 truncates the long contexts (boolq passages, the 130-word edge case) from the left
        for max_length in (None, 100):
            cfg = EvalConfig(batch_size=7, max_length=max_length)
            ran = _check_against_brute_force(
                model, tiny_tokenizer, insts, cfg, atol=1e-9, strategies=("shared_prefix", "per_request")
            )
            assert ran == "per_request"
    finally:
        llama.float()


def test_matches_brute_force_float32_sdpa_and_eager(
    tiny_checkpoint: Path, tiny_tokenizer: PreTrainedTokenizerFast, shared_data: Path
) -> None:
    insts = _instances(shared_data)
    for impl in ("sdpa", "eager"):
        model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint, attn_implementation=impl).eval()
        assert model.config._attn_implementation == impl
        # float32 sums of up to ~100 tokens: 1e-5 absolute, or 1e-6 relative for the long ones (ulp of 500 is 6e-5)
        _check_against_brute_force(
            model, tiny_tokenizer, insts, EvalConfig(batch_size=16), atol=1e-5, rtol=1e-6
        )


def test_gpt2_absolute_positions(gpt2: torch.nn.Module, tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    insts = _instances(None)
    assert resolve_max_length(gpt2, tiny_tokenizer) == 96  # n_positions
    strategy = _check_against_brute_force(
        gpt2, tiny_tokenizer, insts, EvalConfig(batch_size=5), atol=1e-5, rtol=1e-6
    )
    assert strategy == "shared_prefix"


def test_models_that_cannot_pack_fall_back(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    """ALiBi built from a 2D mask (Bloom) fails the packing probe; a sliding window shorter than a
    request disables packing; both still give the brute-force numbers."""
    torch.manual_seed(2)
    vocab = len(tiny_tokenizer)
    bloom = BloomForCausalLM(BloomConfig(vocab_size=vocab, hidden_size=32, n_layer=2, n_head=2))
    bloom.config._attn_implementation = "eager"
    mistral_cfg = MistralConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        sliding_window=8,
    )
    mistral = MistralForCausalLM(mistral_cfg)
    insts = _instances(None)
    for model in (bloom.eval(), mistral.eval()):
        strategy = _check_against_brute_force(
            model, tiny_tokenizer, insts, EvalConfig(batch_size=6, max_length=256), atol=1e-5, rtol=1e-6
        )
        assert strategy == "per_request"
    short = [MultipleChoiceInstance(0, ("a b",) * 2, (" c", " d"), 0, (1, 1))]
    assert (
        _check_against_brute_force(mistral, tiny_tokenizer, short, EvalConfig(), atol=1e-5) == "shared_prefix"
    )


def test_batch_and_padding_invariance(
    llama: torch.nn.Module, tiny_tokenizer: PreTrainedTokenizerFast, shared_data: Path
) -> None:
    insts = _instances(shared_data)
    ref = score_instances(llama, tiny_tokenizer, insts, EvalConfig(batch_size=1, strategy="per_request"))
    for bs in (1, 3, 64):
        for strategy in ("shared_prefix", "per_request"):
            got = score_instances(llama, tiny_tokenizer, insts, EvalConfig(batch_size=bs, strategy=strategy))
            a = np.array([r.logprob for res in got for r in res])
            b = np.array([r.logprob for res in ref for r in res])
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)
            assert [r.is_greedy for res in got for r in res] == [r.is_greedy for res in ref for r in res]
    # the order of the questions does not matter either
    rev = score_instances(llama, tiny_tokenizer, insts[::-1], EvalConfig(batch_size=8))[::-1]
    np.testing.assert_allclose(
        [r.logprob for res in rev for r in res], [r.logprob for res in ref for r in res], rtol=1e-6, atol=1e-5
    )


def test_shared_prefix_feeds_fewer_tokens(
    llama: torch.nn.Module, tiny_tokenizer: PreTrainedTokenizerFast, shared_data: Path
) -> None:
    insts = load_instances(BenchmarkSpec(name="arc_easy", data_dir=shared_data), limit=20)
    shared = evaluate_benchmark(llama, tiny_tokenizer, insts, config=EvalConfig(strategy="shared_prefix"))
    plain = evaluate_benchmark(llama, tiny_tokenizer, insts, config=EvalConfig(strategy="per_request"))
    assert shared.stats.request_tokens == plain.stats.request_tokens == plain.stats.forward_tokens
    assert shared.stats.forward_tokens < 0.6 * plain.stats.forward_tokens
    assert shared.stats.requests == 80


def test_loglikelihood_text_api_and_gold_pairs(
    llama: torch.nn.Module, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    reqs = [("Question: why?\nAnswer:", " because"), ("Other", " thing"), ("Question: why?\nAnswer:", " no")]
    got = loglikelihood(llama, tiny_tokenizer, reqs, EvalConfig(batch_size=2))
    for (c, t), r in zip(reqs, got, strict=True):
        ctx, cont = encode_pair(tiny_tokenizer, c, t)
        assert r.logprob == pytest.approx(brute_force(llama, ctx, cont, 512).logprob, abs=1e-5)
    insts = _instances(None)
    assert gold_pairs(tiny_tokenizer, insts) == [encode_instance(tiny_tokenizer, i)[i.gold] for i in insts]


def test_encode_pair_moves_trailing_whitespace(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    ctx, cont = encode_pair(tiny_tokenizer, "Answer: \n ", "yes")
    assert tiny_tokenizer.decode(ctx) == "Answer:"
    assert tiny_tokenizer.decode(cont) == " \n yes"
    whole = tiny_tokenizer("Answer: \n yes", add_special_tokens=True)["input_ids"]
    assert ctx + cont == whole
    # an empty context becomes the prefix token (BOS here: id 0)
    assert encode_pairs(tiny_tokenizer, [("", "hello")])[0] == ([0], tiny_tokenizer("hello")["input_ids"])


def test_truncation_keeps_the_continuation(
    llama: torch.nn.Module, tiny_tokenizer: PreTrainedTokenizerFast
) -> None:
    inst = MultipleChoiceInstance(0, ("x " * 300,) * 2, (" yes", " no"), 0, (3, 2))
    stats = ScoreStats()
    res = score_instances(llama, tiny_tokenizer, [inst], EvalConfig(max_length=16), stats=stats)[0]
    assert stats.truncated == 2 and stats.request_tokens == 2 * 16
    for (ctx, cont), r in zip(encode_instance(tiny_tokenizer, inst), res, strict=True):
        assert r.logprob == pytest.approx(brute_force(llama, ctx, cont, 16).logprob, abs=1e-5)
    too_long = MultipleChoiceInstance(1, ("a",), (" b" * 40,), 0, (80,))
    with pytest.raises(ModelError, match="longer than the model's context of 16 tokens"):
        score_instances(llama, tiny_tokenizer, [too_long], EvalConfig(max_length=16))


# --------------------------------------------------------------------------------------------
# metrics


def test_acc_and_acc_norm_by_hand() -> None:
    insts = [
        MultipleChoiceInstance(
            0, ("c",) * 2, (" a", " bbbb"), 1, (1, 4)
        ),  # -2 vs -4: acc picks 0; norm -2 vs -1 picks 1
        MultipleChoiceInstance(
            1, ("c",) * 3, (" x", " y", " z"), 0, (1, 1, 1)
        ),  # tie -> first index (np.argmax)
        MultipleChoiceInstance(2, ("c",) * 2, (" p", " q"), 0, (2, 2)),
    ]
    scores = [
        [LoglikelihoodResult(-2.0, False), LoglikelihoodResult(-4.0, True)],
        [
            LoglikelihoodResult(-1.0, False),
            LoglikelihoodResult(-1.0, False),
            LoglikelihoodResult(-3.0, False),
        ],
        [LoglikelihoodResult(-5.0, False), LoglikelihoodResult(-0.5, False)],
    ]
    r = summarize(insts, scores)
    assert r.per_example["pred"].tolist() == [0, 0, 1]
    assert r.per_example["pred_norm"].tolist() == [1, 0, 1]
    assert r.acc == pytest.approx(1 / 3) and r.acc_norm == pytest.approx(2 / 3)
    assert r.acc_stderr == pytest.approx(math.sqrt((2 * (1 / 3) ** 2 + (2 / 3) ** 2) / 2) / math.sqrt(3))
    assert r.per_example["doc_id"].tolist() == [0, 1, 2]
    assert r.per_example["logprobs"][1] == [-1.0, -1.0, -3.0]
    assert r.per_example["is_greedy"][0] == [False, True]
    assert r.metrics()["n"] == 3
    assert math.isnan(mean_stderr([1.0]))


def test_evaluate_benchmark_acc_from_brute_force(
    llama: torch.nn.Module, tiny_tokenizer: PreTrainedTokenizerFast, shared_data: Path
) -> None:
    insts = load_instances(BenchmarkSpec(name="piqa", data_dir=shared_data), limit=12, seed=3)
    res = evaluate_benchmark(llama, tiny_tokenizer, insts, batch_size=4, device="cpu")
    hits, hits_norm = [], []
    for inst in insts:
        lls = [brute_force(llama, c, t, 512).logprob for c, t in encode_instance(tiny_tokenizer, inst)]
        hits.append(int(np.argmax(lls)) == inst.gold)
        hits_norm.append(int(np.argmax(np.array(lls) / np.array(inst.choice_lengths))) == inst.gold)
    assert res.n == 12
    assert res.acc == pytest.approx(np.mean(hits)) and res.acc_norm == pytest.approx(np.mean(hits_norm))
    limited = evaluate_benchmark(llama, tiny_tokenizer, insts, config=EvalConfig(limit=5, seed=2))
    assert limited.n == 5 and set(limited.per_example["doc_id"]) <= {i.doc_id for i in insts}
    again = evaluate_benchmark(llama, tiny_tokenizer, insts, config=EvalConfig(limit=5, seed=2))
    assert limited.per_example["doc_id"].tolist() == again.per_example["doc_id"].tolist()


def test_loglikelihood_tokens_rejects_empty_parts(llama: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="at least one context"):
        loglikelihood_tokens(llama, [[([], [1, 2])]])
