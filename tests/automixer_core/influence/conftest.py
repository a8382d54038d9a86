"""Tiny random causal LMs of every supported family, built from configs (no downloads), and data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from tests.fixtures_models import tiny_llama_config

VOCAB = 96
WINDOW = 16
ARCHS = ["llama_tied", "llama_untied", "gpt2", "neox", "qwen2"]

# per family: (input embedding parameter, output head parameter); tied models name one matrix
EMBED_HEAD = {
    "llama_tied": ["model.embed_tokens.weight"],
    "llama_untied": ["model.embed_tokens.weight", "lm_head.weight"],
    "gpt2": ["transformer.wte.weight"],
    "neox": ["gpt_neox.embed_in.weight", "lm_head.weight"],
    "qwen2": ["model.embed_tokens.weight", "lm_head.weight"],
}
EMBEDDINGS = {
    "transformer.wte.weight",
    "transformer.wpe.weight",
    "model.embed_tokens.weight",
    "gpt_neox.embed_in.weight",
}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads and slow down ~20x when cores are shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def make_model(arch: str, seed: int = 0) -> nn.Module:
    """A tiny random model of the family; eval mode, float32."""
    torch.manual_seed(seed)
    if arch in ("llama_tied", "llama_untied"):
        m: nn.Module = LlamaForCausalLM(tiny_llama_config(VOCAB, tied=arch == "llama_tied", hidden=32))
    elif arch == "gpt2":
        m = GPT2LMHeadModel(
            GPT2Config(
                n_embd=32,
                n_layer=2,
                n_head=4,
                vocab_size=VOCAB,
                n_positions=64,
                bos_token_id=0,
                eos_token_id=0,
            )
        )
    elif arch == "neox":
        m = GPTNeoXForCausalLM(
            GPTNeoXConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                vocab_size=VOCAB,
                max_position_embeddings=64,
                bos_token_id=0,
                eos_token_id=0,
            )
        )
    elif arch == "qwen2":
        m = Qwen2ForCausalLM(
            Qwen2Config(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                vocab_size=VOCAB,
                max_position_embeddings=64,
                tie_word_embeddings=False,
                bos_token_id=0,
                eos_token_id=0,
            )
        )
    else:
        raise ValueError(arch)
    # random init is tiny; a larger spread gives less degenerate gradients
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    return m.eval()


def expected_names(model: nn.Module, arch: str, layers: str) -> list[str]:
    """The selected parameter names, written independently of params.select_blocks."""
    if layers == "embed_head":
        return EMBED_HEAD[arch]
    head = EMBED_HEAD[arch][-1]
    return [n for n, p in model.named_parameters() if p.dim() == 2 and (n not in EMBEDDINGS or n == head)]


def make_docs(seed: int = 1) -> list[list[int]]:
    """Documents of 1, 2, short, window-sized and multi-window lengths; token 0 (Llama's padding_idx) included."""
    g = torch.Generator().manual_seed(seed)
    docs = [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in (1, 2, 7, WINDOW, 23, 40, 11, 5)]
    docs[2][3] = 0
    docs[5][10] = 0
    return docs


def make_queries(seed: int = 2) -> dict[str, list[tuple[list[int], list[int]]]]:
    g = torch.Generator().manual_seed(seed)

    def ex(c: int, k: int) -> tuple[list[int], list[int]]:
        return torch.randint(0, VOCAB, (c,), generator=g).tolist(), torch.randint(
            0, VOCAB, (k,), generator=g
        ).tolist()

    # "long" exceeds the window: its context is cut from the left
    return {"arc": [ex(6, 3), ex(9, 1), ex(4, 5)], "piqa": [ex(3, 2), ex(5, 4)], "long": [ex(20, 4)]}
