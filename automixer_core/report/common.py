"""HTML pieces the report's sections share: escaping, numbers with units, tables, images, notes,
and the replaceable regions (``<!-- region:begin -->`` … ``<!-- region:end -->``)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence

from automixer_core.errors import AutoMixerError

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1050px;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f3f3f3;font-weight:600}
td.text{text-align:left}code{background:#f3f3f3;padding:1px 4px}
img{max-width:100%;display:block;margin:1em 0}.warn{color:#a00}.ok{color:#060}
.doc{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:90%;background:#f7f7f7;
border-left:3px solid #ccc;padding:6px 10px;margin:4px 0 12px 0}.meta{color:#555;font-size:90%}
.muted{color:#666}
"""


def esc(value: object) -> str:
    """``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def pct(share: float, digits: int = 1) -> str:
    """A share 0-1 as a percentage: ``0.1234`` → ``"12.3%"``."""
    return f"{100 * share:.{digits}f}%"


def interval(ci: tuple[float, float] | None, digits: int = 1) -> str:
    """A (lo, hi) interval of shares as ``"10.1–14.5%"``; ``"–"`` when there is none."""
    return "–" if ci is None else f"{100 * ci[0]:.{digits}f}–{100 * ci[1]:.{digits}f}%"


def img(png: bytes, alt: str) -> str:
    """An ``<img>`` holding ``png`` as a base64 data URI (the report stays one file)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, text_columns: Sequence[int] = ()) -> str:
    """An HTML table. ``headers`` are plain text (escaped here); ``rows`` hold cell HTML, already
    escaped by the caller. Columns in ``text_columns`` are left-aligned."""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
    body = []
    for row in rows:
        cells = [
            f'<td class="text">{c}</td>' if i in text_columns else f"<td>{c}</td>" for i, c in enumerate(row)
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>" + head + "\n" + "\n".join(body) + "</table>"


_LIST_LITERAL = re.compile(r"\[((?:'[^']*'|\"[^\"]*\")(?:,\s*(?:'[^']*'|\"[^\"]*\"))*)?\]")


def _unlist(match: re.Match[str]) -> str:
    inner = match.group(1) or ""
    items = re.findall(r"'([^']*)'|\"([^\"]*)\"", inner)
    return ", ".join(a or b for a, b in items) or "none"


def note_sentence(note: str) -> str:
    """A mixture note as one plain sentence (text, not HTML): Python list literals become
    comma-separated names (``['a', 'b']`` → ``a, b``), the first letter is upper case and the
    sentence ends with a full stop."""
    text = _LIST_LITERAL.sub(_unlist, note.strip())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def notes_list(notes: Sequence[str]) -> str:
    """The notes as an HTML list, one escaped sentence per item ("" without notes)."""
    if not notes:
        return ""
    return "<ul>" + "".join(f"<li>{esc(note_sentence(n))}</li>" for n in notes) + "</ul>"


def begin(region: str) -> str:
    return f"<!-- {region}:begin -->"


def end(region: str) -> str:
    return f"<!-- {region}:end -->"


def region(name: str, content: str) -> str:
    """``content`` between the markers of region ``name`` (replaceable by :func:`replace_region`)."""
    return f"{begin(name)}\n{content}\n{end(name)}"


def replace_region(page: str, name: str, content: str) -> str:
    """``page`` with region ``name``'s content replaced by ``content``.

    Raises:
        AutoMixerError: the page has no such region (a report written before regions existed).
    """
    b, e = begin(name), end(name)
    i, j = page.find(b), page.find(e)
    if i < 0 or j < i:
        raise AutoMixerError(
            f"The report has no {name!r} region",
            expected=f"the markers {b} and {e}",
            fix="publish the mixture again with this version (remix into a fresh store)",
        )
    return page[: i + len(b)] + "\n" + content + "\n" + page[j:]
