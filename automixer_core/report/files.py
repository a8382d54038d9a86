"""Links to the files published beside the report (relative: the report sits in the folder)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from automixer_core.report.common import esc

MEMBERSHIP_CONTENT = (
    "one row per scored document: its id (doc_id), its group, its joint score (joint_score, "
    "influence per token, arbitrary units), its length (n_tokens, tokens), its corpus domain "
    "(domain, where the corpus has labels) and its score on every benchmark (score__<benchmark>, "
    "influence per token at that benchmark's artifact checkpoint)."
)
MEMBERSHIP_SENTENCE = "membership.parquet holds " + MEMBERSHIP_CONTENT


def link(path: str, text: str | None = None) -> str:
    """A relative link to ``path`` (URL-quoted; text escaped)."""
    return f'<a href="{esc(quote(path))}">{esc(text or path)}</a>'


def files_section(exports: Sequence[str]) -> str:
    """The files of the mixture's folder: the document, the membership table and the exports.

    Args:
        exports: the export files' names under ``exports/`` (e.g. ``megatron_data_blend.txt``).
    """
    items = [
        f"<li>{link('mixture.json')}: the mixture (groups, weights, intervals, provenance).</li>",
        f"<li>{link('membership.parquet')} holds {esc(MEMBERSHIP_CONTENT)}</li>",
        *[f"<li>{link('exports/' + name)}: trainer configuration.</li>" for name in exports],
        f"<li>{link('manifest.json')}: every file's size and sha256.</li>",
    ]
    return "<h2 id='files'>Files</h2><ul>" + "".join(items) + "</ul>"
