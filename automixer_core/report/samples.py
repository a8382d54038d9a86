"""A few documents of every group, so a reader sees what each group holds."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from automixer_core.report.common import esc

SAMPLES_PER_GROUP = 3
SAMPLE_CHARS = 300


@dataclass(frozen=True)
class SampleDocument:
    """One document shown in the report.

    Attributes:
        doc_id: the corpus document id.
        group: its group in the mixture.
        text: its first :data:`SAMPLE_CHARS` characters (plain text; escaped when rendered).
        n_tokens: its length (tokens, as scored).
        joint_score: its joint influence per token (arbitrary units).
        domain: its corpus domain label, where known.
        truncated: whether the text was cut.
    """

    doc_id: str
    group: str
    text: str
    n_tokens: int
    joint_score: float
    domain: str | None = None
    truncated: bool = False


def pick_samples(membership: pd.DataFrame, k: int = SAMPLES_PER_GROUP, seed: int = 0) -> pd.DataFrame:
    """Up to ``k`` rows of every group, drawn at random (seeded): the rows of ``membership``
    (``doc_id, group, ...``) to show, by group then in draw order."""
    if membership.empty:
        return membership
    shuffled = membership.sample(frac=1.0, random_state=seed)
    return shuffled.groupby("group", sort=True).head(k).sort_values("group", kind="stable")


def sample_document(row: Mapping[Any, Any], text: str, chars: int = SAMPLE_CHARS) -> SampleDocument:
    """A :class:`SampleDocument` from a membership row and the document's full text."""
    domain = row.get("domain")
    return SampleDocument(
        doc_id=str(row["doc_id"]),
        group=str(row["group"]),
        text=text[:chars],
        n_tokens=int(row["n_tokens"]),
        joint_score=float(row["joint_score"]),
        domain=None if domain is None or (isinstance(domain, float) and math.isnan(domain)) else str(domain),
        truncated=len(text) > chars,
    )


def samples_section(
    samples: Mapping[str, Sequence[SampleDocument]], groups: Sequence[str], problem: str | None = None
) -> str:
    """The section: per group, its sample documents (text escaped, first characters only)."""
    parts = [
        "<h2 id='samples'>Sample documents</h2>",
        f"<p>Up to {SAMPLES_PER_GROUP} documents of each group, drawn at random (seed 0); the first "
        f"{SAMPLE_CHARS} characters of each.</p>",
    ]
    if problem:
        parts.append(f"<p class='warn'>{esc(problem)}</p>")
    for group in [*groups, *sorted(set(samples) - set(groups))]:
        docs = samples.get(group, [])
        if not docs:
            continue
        parts.append(f"<h3>{esc(group)}</h3>")
        for d in docs:
            meta = [f"<code>{esc(d.doc_id)}</code>"]
            if d.domain is not None:
                meta.append(f"domain {esc(d.domain)}")
            meta.append(f"{d.n_tokens:,} tokens")
            meta.append(f"joint score {d.joint_score:.3g} per token")
            parts.append(f"<div class='meta'>{' · '.join(meta)}</div>")
            parts.append(f"<div class='doc'>{esc(d.text)}{'…' if d.truncated else ''}</div>")
    return "\n".join(parts)
