"""Sequences → context windows ("rows") → padded batches.

A *sequence* is a corpus document or one benchmark query example. It becomes one or more rows
(context windows of at most ``window`` tokens). Each row carries, per predicted position, the
weight of that next-token NLL in the sequence's loss, so that the loss of a sequence is the sum
over its rows of Σ_t weight_t · NLL_t and its gradient is the sum of the rows' gradients.

- Document (ours, DESIGN §1.3): ℓ(x) = mean next-token NLL over the N−1 predictions of its N
  tokens. Windows of ``window`` tokens start every ``window − 1`` tokens (one token overlap), so
  each of the N−1 predictions is made exactly once, in the window where it has the most context
  that the window allows; every prediction has weight 1/(N−1).
- Query example (context c, gold continuation y): the benchmark loss is Σ_j −log p(y_j | c, y_<j)
  (the sum of the continuation's token NLLs, lm-evaluation-harness' loglikelihood); context
  tokens are dropped from the left when c + y exceeds the window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from automixer_core.errors import InfluenceError


@dataclass(frozen=True)
class Row:
    """One context window of one sequence.

    Attributes:
        seq: index of the sequence (document / query example) in its run.
        input_ids: the window's tokens, length L ≤ window.
        target_start: predictions at positions p ≥ target_start (predicting input_ids[p+1])
            enter the loss; earlier ones do not.
        weight: the weight of each of those predictions' NLL.
        first: this is the sequence's first row.
        last: this is the sequence's last row.
    """

    seq: int
    input_ids: tuple[int, ...]
    target_start: int
    weight: float
    first: bool = True
    last: bool = True


def document_rows(seq: int, ids: Sequence[int], window: int) -> list[Row]:
    """Rows of one document (its mean next-token loss); ``[]`` when it has fewer than 2 tokens."""
    n = len(ids)
    if n < 2:
        return []
    if window < 2:
        raise InfluenceError(f"context window {window}", expected="at least 2 tokens")
    w = 1.0 / (n - 1)
    starts = list(range(0, n - 1, window - 1))
    return [
        Row(seq, tuple(int(t) for t in ids[s : s + window]), 0, w, first=i == 0, last=i == len(starts) - 1)
        for i, s in enumerate(starts)
    ]


def query_row(
    seq: int, context: Sequence[int], continuation: Sequence[int], window: int, weight: float = 1.0
) -> Row:
    """The row of one query example: Σ of the continuation's token NLLs given the context."""
    if not context:
        raise InfluenceError(
            f"query example {seq} has an empty context",
            expected="at least one context token (the first continuation token needs something to condition on)",
            fix="prepend the tokenizer's BOS/EOS token to empty contexts, as lm-evaluation-harness does",
        )
    if not continuation:
        raise InfluenceError(f"query example {seq} has an empty continuation", expected="at least one token")
    if len(continuation) > window - 1:
        raise InfluenceError(
            f"query example {seq} has a {len(continuation)}-token continuation",
            expected=f"at most window - 1 = {window - 1} tokens",
            fix="raise influence.max_length or drop the example",
        )
    ids = [*context, *continuation][-window:]
    return Row(seq, tuple(int(t) for t in ids), len(ids) - len(continuation) - 1, weight)


def batch_rows(groups: Iterator[list[Row]], batch_size: int) -> Iterator[list[Row]]:
    """Pack the rows of consecutive sequences into batches of at most ``batch_size`` rows.

    A sequence's rows stay in one batch, unless it alone has more than ``batch_size`` rows; it
    then fills batches of its own (the scorer carries its partial gradient between them).
    """
    cur: list[Row] = []
    for rows in groups:
        if not rows:
            continue
        if len(rows) > batch_size:
            if cur:
                yield cur
                cur = []
            for i in range(0, len(rows), batch_size):
                yield rows[i : i + batch_size]
            continue
        if len(cur) + len(rows) > batch_size:
            yield cur
            cur = []
        cur.extend(rows)
    if cur:
        yield cur


@dataclass
class Batch:
    """A padded batch of R rows of padded length T, grouped into S segments.

    A segment is the run of consecutive rows of one sequence inside the batch.

    Attributes:
        input_ids: [R, T] int64 (padding = 0, masked).
        attention_mask: [R, T] int64.
        position_ids: [R, T] int64, 0 at each row's first real token whatever the padding side.
        targets: [R, T] int64, next token at positions whose NLL enters the loss, else -100.
        target_weights: [R, T] float32, the weight of each such NLL, else 0.
        row_seg: [R] int64 segment index of each row.
        seg_rows: per segment, its row range (start, stop).
        seg_seq: per segment, the sequence index.
        seg_first / seg_last: the segment holds the first / last row of its sequence.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    targets: torch.Tensor
    target_weights: torch.Tensor
    row_seg: torch.Tensor
    seg_rows: list[tuple[int, int]]
    seg_seq: list[int]
    seg_first: list[bool]
    seg_last: list[bool]

    @property
    def n_seg(self) -> int:
        """S, the number of segments."""
        return len(self.seg_seq)

    @property
    def seg_complete(self) -> list[bool]:
        """Per segment: it holds all rows of its sequence."""
        return [f and la for f, la in zip(self.seg_first, self.seg_last, strict=True)]


def collate(rows: list[Row], padding_side: str, device: torch.device | str = "cpu") -> Batch:
    """Pad rows into a :class:`Batch` (attention mask and position ids make padding inert)."""
    r, t = len(rows), max(len(x.input_ids) for x in rows)
    ids = torch.zeros(r, t, dtype=torch.long)
    mask = torch.zeros(r, t, dtype=torch.long)
    pos = torch.zeros(r, t, dtype=torch.long)
    tgt = torch.full((r, t), -100, dtype=torch.long)
    tw = torch.zeros(r, t, dtype=torch.float32)
    row_seg = torch.zeros(r, dtype=torch.long)
    seg_rows: list[tuple[int, int]] = []
    seg_seq: list[int] = []
    seg_first: list[bool] = []
    seg_last: list[bool] = []
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        off = t - n if padding_side == "left" else 0
        x = torch.tensor(row.input_ids, dtype=torch.long)
        ids[i, off : off + n] = x
        mask[i, off : off + n] = 1
        pos[i, off : off + n] = torch.arange(n)
        if n - 1 > row.target_start:
            tgt[i, off + row.target_start : off + n - 1] = x[row.target_start + 1 :]
            tw[i, off + row.target_start : off + n - 1] = row.weight
        if i == 0 or rows[i - 1].seq != row.seq:
            seg_rows.append((i, i + 1))
            seg_seq.append(row.seq)
            seg_first.append(row.first)
            seg_last.append(row.last)
        else:
            seg_rows[-1] = (seg_rows[-1][0], i + 1)
            seg_last[-1] = row.last
        row_seg[i] = len(seg_seq) - 1
    return Batch(
        ids.to(device),
        mask.to(device),
        pos.to(device),
        tgt.to(device),
        tw.to(device),
        row_seg.to(device),
        seg_rows,
        seg_seq,
        seg_first,
        seg_last,
    )
