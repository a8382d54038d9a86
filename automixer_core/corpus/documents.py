"""The two values the corpus package hands out: :class:`Document` and :class:`Shard`.

``row`` is the 0-based index of the document in its file (blank jsonl lines are not rows), so a
:class:`Shard` (file + row range) names the same documents on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """One corpus document.

    Attributes:
        id: the row's ``id`` field, or ``"<file>:<row>"`` when it has none.
        text: the document text.
        group: the row's group field (default ``domain``), or the file's parent folder name.
        file: key of the file relative to the corpus URI (``math/part-00000.jsonl``).
        row: 0-based index of the document within its file.
    """

    id: str
    text: str
    group: str
    file: str
    row: int


@dataclass(frozen=True)
class Shard:
    """A contiguous range of documents of one corpus file: rows ``start`` (inclusive) to ``stop``.

    Attributes:
        file: key of the file relative to the corpus URI.
        start: first row (0-based).
        stop: one past the last row.
        digest: 16 hex digits; a hash of the file key, the file's content digest and the range,
            so it changes when (and only when) the documents it names can have changed.
    """

    file: str
    start: int
    stop: int
    digest: str

    @property
    def num_docs(self) -> int:
        return self.stop - self.start
