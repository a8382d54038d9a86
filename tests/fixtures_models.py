"""Session fixtures with real tiny models: a BPE tokenizer trained on real text, tiny Llama checkpoints.

Random-initialised models are enough where only exactness matters (evaluation parity, influence
oracles); trained proxy runs live in ``tests/fixtures_proxy.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from automixer_core.tokenizer import train_bpe_tokenizer

_FALLBACK_TEXT = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "Question: What is two plus two? Answer: four.",
    "A plant needs water and sunlight to grow; roots take up water from the soil.",
    "She opened the door, looked outside, and decided to take an umbrella.",
]


def _sample_texts(data_dir: Path | None, limit_per_domain: int = 150) -> Iterator[str]:
    if data_dir is None:
        yield from _FALLBACK_TEXT * 50
        return
    for part in sorted((data_dir / "corpus").glob("*/part-*.jsonl")):
        with part.open() as f:
            for i, line in enumerate(f):
                if i >= limit_per_domain:
                    break
                yield json.loads(line)["text"]
    for bench in sorted((data_dir / "benchmarks").glob("*/*.jsonl")):
        with bench.open() as f:
            for i, line in enumerate(f):
                if i >= 50:
                    break
                yield line  # raw json lines: questions, choices, contexts


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    """A 2048-token byte-level BPE trained on the real corpus and benchmarks (or fallback text)."""
    from tests.conftest import SHARED_DATA

    data = SHARED_DATA if (SHARED_DATA / "corpus").is_dir() else None
    return train_bpe_tokenizer(_sample_texts(data), vocab_size=2048)


def tiny_llama_config(
    vocab_size: int, *, tied: bool = True, hidden: int = 64, layers: int = 2
) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=tied,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: PreTrainedTokenizerFast
) -> Path:
    """A Hugging Face checkpoint folder (config, safetensors, tokenizer) of a random tiny Llama."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(len(tiny_tokenizer)))
    out = tmp_path_factory.mktemp("tiny-ckpt") / "checkpoint-100"
    model.save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out
