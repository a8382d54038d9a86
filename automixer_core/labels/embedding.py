"""Mean hidden states of texts under a causal LM: the proxy's own view of a document, as features
for the group predictor (``labeling.predictor.features: hidden_state``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


@torch.no_grad()
def mean_hidden_states(
    model: Any, tokenizer: Any, texts: Sequence[str], *, max_tokens: int = 256, batch_size: int = 16
) -> np.ndarray:
    """The mean over tokens of the last layer's hidden state of each text.

    Each text is tokenized alone (truncated to its first ``max_tokens`` tokens), the texts are run
    in batches padded on the right, and the mean is taken over each text's own tokens only (the
    attention mask), so a text's vector does not depend on its batch.

    Args:
        model: a Hugging Face causal LM (its ``output_hidden_states``).
        tokenizer: its tokenizer.
        texts: N documents.
        max_tokens: tokens kept per text.
        batch_size: texts per forward pass.

    Returns:
        (N, d) float32, d = the model's hidden size; a text with no tokens gets zeros.
    """
    device = next(model.parameters()).device
    ids = [tokenizer(t, truncation=True, max_length=max_tokens)["input_ids"] for t in texts]
    hidden = int(model.config.hidden_size)
    out = np.zeros((len(ids), hidden), dtype=np.float32)
    order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths together: less padding
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            rows = [int(i) for i in order[start : start + batch_size] if ids[int(i)]]
            if not rows:
                continue
            width = max(len(ids[i]) for i in rows)
            batch = torch.zeros((len(rows), width), dtype=torch.long, device=device)
            mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
            for j, i in enumerate(rows):
                batch[j, : len(ids[i])] = torch.tensor(ids[i], device=device)
                mask[j, : len(ids[i])] = 1
            states = model(input_ids=batch, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
            m = mask.unsqueeze(-1).to(states.dtype)
            mean = (states * m).sum(1) / m.sum(1)  # [B, d]
            out[rows] = mean.float().cpu().numpy()
    finally:
        model.train(was_training)
    return out
