"""features: hidden_state — the proxy's mean hidden state as the group predictor's features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from automixer_core.errors import ConfigError
from automixer_core.labels.config import PredictorConfig
from automixer_core.labels.embedding import mean_hidden_states
from automixer_core.labels.predictor import GroupPredictor, train_group_predictor
from tests.fixtures_models import tiny_llama_config


def test_mean_hidden_states_equal_one_text_at_a_time(tiny_tokenizer: PreTrainedTokenizerFast) -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_llama_config(len(tiny_tokenizer))).eval()
    texts = ["a short one", "a somewhat longer text with more words in it, and a comma", "", "x " * 400]
    got = mean_hidden_states(model, tiny_tokenizer, texts, max_tokens=64, batch_size=3)
    assert got.shape == (4, model.config.hidden_size) and got.dtype == np.float32
    with torch.no_grad():  # the oracle: each text alone, no padding, the plain mean over its tokens
        for i, t in enumerate(texts):
            ids = tiny_tokenizer(t, truncation=True, max_length=64)["input_ids"]
            if not ids:
                assert not got[i].any()  # no tokens: zeros
                continue
            h = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
            np.testing.assert_allclose(got[i], h.mean(0).numpy(), rtol=1e-4, atol=1e-5)


def _world(n_per_group: int = 40, seed: int = 0) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """Texts that say nothing about their group (random words from one shared pool) whose
    'hidden states' separate the groups: only the hidden-state features can tell them apart."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(50)]
    texts, groups, vecs = [], [], {}
    for g, centre in (("a", 1.0), ("b", -1.0), ("c", 0.0)):
        for j in range(n_per_group):
            t = " ".join(rng.choice(words, 12)) + f" #{g}{j}"
            texts.append(t)
            groups.append(g)
            v = rng.normal(0, 0.3, 8)
            v[0] += centre
            v[1] += 1.0 if g == "c" else 0.0
            vecs[t] = v
    return texts, groups, vecs


def test_hidden_state_features_learn_what_the_text_hides_and_survive_to_bytes() -> None:
    texts, groups, vecs = _world()
    calls: list[int] = []

    def embed(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        return np.stack([vecs[t] for t in batch])

    base = PredictorConfig(n_features=2**10, epochs=30, min_docs_per_group=2)
    ngrams, ngram_report = train_group_predictor(texts, groups, None, base)
    hidden_cfg = base.model_copy(update={"features": "hidden_state"})
    ckpt = {"name": "checkpoint-100", "fingerprint": "f" * 16, "uri": "/nowhere"}
    hidden, report = train_group_predictor(texts, groups, None, hidden_cfg, embed=embed, checkpoint=ckpt)
    assert calls == [len(texts)]  # embedded once, for the holdout evaluation and both fits
    assert report.accuracy >= 0.95 > ngram_report.accuracy + 0.3  # chance is 1/3
    _, both_report = train_group_predictor(
        texts, groups, None, base.model_copy(update={"features": "both"}), embed=embed, checkpoint=ckpt
    )
    assert both_report.accuracy >= 0.9
    loaded = GroupPredictor.from_bytes(hidden.to_bytes())
    assert loaded.checkpoint == ckpt and loaded.embedding_mean is not None
    a, b = hidden.predict(texts, embed=embed), loaded.predict(texts, embed=embed)
    np.testing.assert_allclose(a.probabilities, b.probabilities)
    assert (a.groups == np.asarray(groups)).mean() >= 0.95
    with pytest.raises(ConfigError, match="hidden states"):
        loaded.predict(texts)  # no embed: refused, not silently ngram-only
    with pytest.raises(ConfigError, match="needs the proxy's hidden states"):
        train_group_predictor(texts, groups, None, hidden_cfg)
    assert ngrams.predict(texts[:3]).groups.shape == (3,)  # ngrams need no embed
