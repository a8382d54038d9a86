"""Training data for proxy runs: reading groups, group weights, tokenizing, packing and sampling.

Sampling is by *rows*: each group's documents form their own endless packed stream (documents in a
fresh random order every epoch, each followed by EOS, concatenated and cut into rows of
``seq_len`` tokens), and every row of a batch comes from group g with probability w_g. So the
share of training tokens from group g is w_g in expectation (binomial per row), whatever the
document lengths, and a row never mixes groups.
"""

from __future__ import annotations

import logging
import posixpath
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from automixer_core.corpus import iter_documents
from automixer_core.errors import AutoMixerError, ConfigError, StorageError
from automixer_core.published import is_complete
from automixer_core.store import Store

logger = logging.getLogger(__name__)


# --- reading -------------------------------------------------------------------------------------


def read_groups(
    corpus_uri: str,
    *,
    text_field: str = "text",
    id_field: str = "id",
    group_field: str = "domain",
    max_docs_per_group: int | None = None,
    max_docs: int | None = None,
    membership: Mapping[str, str] | None = None,
) -> dict[str, list[str]]:
    """The corpus's non-empty document texts by group (groups sorted by name, documents in file order).

    Args:
        max_docs_per_group: keep at most this many documents of each group (the first read).
        max_docs: read at most this many documents in total.
        membership: doc id → group. When given, it sets each document's group (instead of
            ``group_field``) and the documents it does not name are left out: the groups of a
            published mixture, whose ``membership.parquet`` names the documents it scored.
    """
    groups: dict[str, list[str]] = {}
    for doc in iter_documents(
        corpus_uri, text_field=text_field, id_field=id_field, group_field=group_field, max_docs=max_docs
    ):
        group = doc.group if membership is None else membership.get(doc.id)
        if group is None:
            continue
        texts = groups.setdefault(group, [])
        if doc.text and (max_docs_per_group is None or len(texts) < max_docs_per_group):
            texts.append(doc.text)
    return {g: groups[g] for g in sorted(groups) if groups[g]}


def tokenizer_sample(groups: Mapping[str, list[str]], num_docs: int, max_chars: int) -> list[str]:
    """Up to ``num_docs`` texts taken round-robin over the groups (so each group is represented),
    each cut to ``max_chars`` characters. Deterministic."""
    out: list[str] = []
    names = sorted(groups)
    i = 0
    while len(out) < num_docs and any(i < len(groups[g]) for g in names):
        for g in names:
            if i < len(groups[g]) and len(out) < num_docs:
                out.append(groups[g][i][:max_chars])
        i += 1
    return out


def read_membership(uri: str, column: str = "group") -> dict[str, str]:
    """doc id → ``column`` (``group`` or ``domain``) of a published ``membership.parquet``.

    Raises:
        ConfigError: the file cannot be read, or has no such column.
    """
    from automixer_core.mixture import membership_from_parquet

    parent, name = posixpath.split(str(uri).rstrip("/"))
    try:
        table = membership_from_parquet(Store(parent or ".").read_bytes(name))
    except AutoMixerError as exc:
        raise ConfigError(
            f"Cannot read the membership table {uri!r}: {exc.found}",
            fix="point group_membership at the membership.parquet of a published mixture",
        ) from exc
    if column not in table.columns:
        raise ConfigError(
            f"The membership table {uri!r} has no column {column!r} (columns: {list(table.columns)})",
            fix="use membership_column: group, or domain for a corpus labelled by domain",
        )
    return dict(zip(table["doc_id"].astype(str), table[column].astype(str), strict=True))


# --- group weights -------------------------------------------------------------------------------


def load_mixture_weights(uri: str, corpus_groups: Iterable[str] | None = None) -> dict[str, float]:
    """Group weights from a published mixture JSON: ``{"groups": [{"name": ..., "weight": ...}, ...]}``.

    A flat ``{"weights": {name: weight}}`` is accepted too. When ``corpus_groups`` is given and the
    mixture's task-aligned groups are not among them but its per-domain weights (``domains``) are,
    the domain weights are used: a labelled corpus is then re-weighted by domain (ours).
    """
    parent, name = posixpath.split(str(uri).rstrip("/"))
    try:
        data = Store(parent or ".").read_json(name)
    except StorageError as exc:
        raise ConfigError(
            f"Cannot read the mixture file {uri!r}: {exc.found}",
            fix="set group_weights to the path/URI of a mixture JSON, or to a dict of weights",
        ) from exc
    if isinstance(data, dict) and "provenance" in data and not is_complete(Store(parent or "."), ""):
        raise ConfigError(
            f"Mixture {uri!r} was published by AutoMixer but its folder has no manifest.json: the publish "
            "did not finish, so the mixture may be partial",
            fix="run the remix again with the same config (it completes the publish), or use mixtures/latest.json",
        )
    try:
        domains = data.get("domains") if isinstance(data, dict) else None
        known = set(corpus_groups) if corpus_groups is not None else None
        if (
            known is not None
            and isinstance(domains, list)
            and domains
            and isinstance(data.get("groups"), list)
            and not {str(g["name"]) for g in data["groups"]} <= known
            and {str(d["name"]) for d in domains} <= known
        ):
            weights = {str(d["name"]): float(d["weight"]) for d in domains}
        elif isinstance(data, dict) and isinstance(data.get("groups"), list):
            weights = {str(g["name"]): float(g["weight"]) for g in data["groups"]}
        elif isinstance(data, dict) and isinstance(data.get("weights"), dict):
            weights = {str(k): float(v) for k, v in data["weights"].items()}
        else:
            raise KeyError("groups")
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"Mixture file {uri!r} has no usable group weights ({type(exc).__name__}: {exc})",
            expected='{"groups": [{"name": "<group>", "weight": <number>}, ...]}',
            fix="point group_weights at a mixture published by AutoMixer",
        ) from exc
    return weights


def resolve_group_weights(spec: Mapping[str, float] | str | None, groups: Iterable[str]) -> dict[str, float]:
    """Normalised sampling weights (summing to 1) for every group of the corpus.

    Args:
        spec: None (uniform over ``groups``), a dict of weights, or the path/URI of a mixture file.
        groups: the corpus's group names.

    Corpus groups the spec does not name get weight 0 (and are logged).

    Raises:
        ConfigError: the spec names a group the corpus does not have; negative weights; all zero.
    """
    names = sorted(set(groups))
    if not names:
        raise ConfigError(
            "The corpus has no groups with documents", fix="check the corpus URI and text_field"
        )
    if spec is None:
        return {g: 1.0 / len(names) for g in names}
    source = "group_weights"
    if isinstance(spec, str):
        source = spec
        spec = load_mixture_weights(spec, names)
    unknown = sorted(set(spec) - set(names))
    if unknown:
        raise ConfigError(
            f"{source} names group(s) {unknown} that the corpus does not have (its groups: {names})",
            fix="use the corpus's group names (the group_field value, or the folder names)",
        )
    negative = {g: w for g, w in spec.items() if w < 0}
    total = sum(spec.values())
    if negative or total <= 0:
        raise ConfigError(
            f"{source} has weights {dict(spec)}",
            expected="weights ≥ 0 with a positive sum",
            fix="give at least one group a positive weight",
        )
    missing = [g for g in names if g not in spec]
    if missing:
        logger.info("Groups %s are not in %s: weight 0", missing, source)
    return {g: float(spec.get(g, 0.0)) / total for g in names}


# --- tokenizing and packing ----------------------------------------------------------------------


def tokenize_texts(texts: list[str], tokenizer: Any, batch_size: int = 512) -> list[np.ndarray]:
    """Token ids of each text, no special tokens added: a list of int32 arrays [n_i]."""
    backend = tokenizer.backend_tokenizer
    out: list[np.ndarray] = []
    for i in range(0, len(texts), batch_size):
        for enc in backend.encode_batch(texts[i : i + batch_size], add_special_tokens=False):
            out.append(np.asarray(enc.ids, dtype=np.int32))
    return out


class PackedStream:
    """An endless stream of rows of ``seq_len`` tokens packed from one group's documents.

    Epoch by epoch, the documents are taken in a fresh random order (or in the given order when
    ``rng`` is None), each followed by ``eos_id``, concatenated; the stream is that concatenation
    over all epochs, cut into consecutive rows. Tokens left at an epoch's end carry into the next.

    Args:
        docs: token ids of each document, int arrays [n_i]; empty documents are dropped.
        seq_len: tokens per row.
        eos_id: the separator appended after every document.
        rng: shuffles each epoch; None keeps the documents' order.
        record_order: keep every epoch's document order in ``epoch_orders`` (for tests).
    """

    def __init__(
        self,
        docs: list[np.ndarray],
        seq_len: int,
        eos_id: int,
        rng: np.random.Generator | None = None,
        *,
        record_order: bool = False,
    ) -> None:
        self.docs = [np.asarray(d, dtype=np.int64) for d in docs if len(d)]
        if not self.docs:
            raise ConfigError("A group has no tokens to pack", fix="remove the group or give it documents")
        self.seq_len = seq_len
        self.eos = np.asarray([eos_id], dtype=np.int64)
        self.rng = rng
        self.record_order = record_order
        self.epoch_orders: list[list[int]] = []
        self.epoch = 0
        self._order: list[int] = []
        self._next_doc = 0
        self._buf = np.empty(0, dtype=np.int64)
        self._pos = 0

    def _start_epoch(self) -> None:
        n = len(self.docs)
        order = self.rng.permutation(n).tolist() if self.rng is not None else list(range(n))
        if self.record_order:
            self.epoch_orders.append(order)
        self._order = order
        self._next_doc = 0
        self.epoch += 1

    def _refill(self) -> None:
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        while have < self.seq_len:
            if self._next_doc >= len(self._order):
                self._start_epoch()
            doc = self.docs[self._order[self._next_doc]]
            self._next_doc += 1
            parts += [doc, self.eos]
            have += len(doc) + 1
        self._buf = np.concatenate(parts)
        self._pos = 0

    def next_row(self) -> np.ndarray:
        """The next ``seq_len`` tokens of the stream, int64 [seq_len]."""
        if len(self._buf) - self._pos < self.seq_len:
            self._refill()
        row = self._buf[self._pos : self._pos + self.seq_len]
        self._pos += self.seq_len
        return row


def _group_seed(seed: int, name: str) -> list[int]:
    return [seed, zlib.crc32(name.encode())]


class MixtureSampler:
    """Batches of packed rows, each row drawn from a group with probability equal to its weight.

    Deterministic given ``seed``: the group draws and every group's epoch shuffles come from
    generators seeded by (seed, group name), independent of the other groups.

    Args:
        groups: token ids per document [n_i], by group.
        weights: sampling weight per group (normalised here); groups with weight 0 are never drawn.
        seq_len: tokens per row.
        eos_id: document separator.
        seed: random seed.
    """

    def __init__(
        self,
        groups: Mapping[str, list[np.ndarray]],
        weights: Mapping[str, float],
        seq_len: int,
        eos_id: int,
        seed: int,
    ) -> None:
        self.names = sorted(g for g, w in weights.items() if w > 0)
        if not self.names:
            raise ConfigError(
                f"No group has a positive weight in {dict(weights)}", fix="give a group weight > 0"
            )
        empty = [g for g in self.names if not any(len(d) for d in groups.get(g, []))]
        if empty:
            raise ConfigError(
                f"Groups {empty} have a positive weight but no documents",
                fix="give them weight 0 or check the corpus's group labels",
            )
        total = sum(weights[g] for g in self.names)
        self.probs = np.asarray([weights[g] / total for g in self.names], dtype=np.float64)
        self.streams = {
            g: PackedStream(list(groups[g]), seq_len, eos_id, np.random.default_rng(_group_seed(seed, g)))
            for g in self.names
        }
        self.rng = np.random.default_rng([seed, 0x6D1C])
        self.seq_len = seq_len
        self.rows_per_group: Counter[str] = Counter()

    def next_batch(self, batch_size: int) -> tuple[torch.Tensor, list[str]]:
        """A batch of token ids, int64 [batch_size, seq_len], and the group of each row."""
        picks = self.rng.choice(len(self.names), size=batch_size, p=self.probs)
        rows = []
        names = []
        for i in picks.tolist():
            g = self.names[i]
            rows.append(self.streams[g].next_row())
            names.append(g)
            self.rows_per_group[g] += 1
        return torch.from_numpy(np.stack(rows)), names

    @property
    def tokens_per_group(self) -> dict[str, int]:
        """Tokens drawn so far from each group (rows × seq_len)."""
        return {g: self.rows_per_group[g] * self.seq_len for g in self.names}
