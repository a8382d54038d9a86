"""The group predictor's features: hashed n-grams of the text, the proxy's hidden states, or both."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from automixer_core.errors import ConfigError
from automixer_core.labels.config import PredictorConfig


class Featurizer:
    """The predictor's features of texts: (N,) → CSR float64 (N, F).

    ``features`` of the config: ``ngrams``, hashed word (and optionally char) n-grams, each block
    l2-normalised per row; ``hidden_state``, the proxy's mean last hidden state of each text
    (:func:`~automixer_core.labels.embedding.mean_hidden_states`, given as ``embedded``), centred
    by ``embedding_mean`` (the scored documents' mean) and l2-normalised per row, so it weighs as
    much as one n-gram block; ``both``, the two side by side.
    """

    def __init__(self, config: PredictorConfig, embedding_mean: np.ndarray | None = None) -> None:
        self.features = config.features
        self.embedding_mean = embedding_mean
        self.max_chars = config.max_chars
        self.word = HashingVectorizer(
            n_features=config.n_features,
            ngram_range=(1, config.ngram_max),
            alternate_sign=False,
            norm="l2",
            lowercase=True,
        )
        self.char = (
            HashingVectorizer(
                n_features=config.n_features,
                analyzer="char_wb",
                ngram_range=(3, 5),
                alternate_sign=False,
                norm="l2",
                lowercase=True,
            )
            if config.char_ngrams
            else None
        )

    @property
    def needs_embedding(self) -> bool:
        return self.features in ("hidden_state", "both")

    def transform(self, texts: Sequence[str], embedded: np.ndarray | None = None) -> sp.csr_matrix:
        """Features of N ``texts``; ``embedded``: their (N, d) mean hidden states, where used."""
        blocks: list[sp.spmatrix] = []
        if self.features in ("ngrams", "both"):
            cut = list(texts) if self.max_chars is None else [t[: self.max_chars] for t in texts]
            blocks.append(self.word.transform(cut))
            if self.char is not None:
                blocks.append(self.char.transform(cut))
        if self.needs_embedding:
            if embedded is None or len(embedded) != len(texts):
                raise ConfigError(
                    f"features: {self.features} needs the proxy's hidden states of the {len(texts)} texts "
                    f"(got {'none' if embedded is None else len(embedded)})",
                    fix="pass embed= (a function of texts → mean hidden states) to train and predict",
                )
            z = np.asarray(embedded, dtype=np.float64)
            if self.embedding_mean is not None:
                z = z - self.embedding_mean
            norms = np.linalg.norm(z, axis=1, keepdims=True)
            blocks.append(sp.csr_matrix(z / np.where(norms > 0, norms, 1.0)))
        return sp.csr_matrix(sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0])
