"""A corpus that shrank is never silent: the publish notes name what the previous mixture had."""

from __future__ import annotations

from automixer_core.mixture import mixture_from_aggregation
from tasks.publish import vanished_notes
from tests.automixer_core.test_mixture import _aggregation, _provenance


def test_domains_and_groups_absent_since_the_previous_mixture_are_named() -> None:
    agg = _aggregation()
    previous = mixture_from_aggregation(agg, _provenance())
    assert vanished_notes(previous, agg) == []  # nothing gone: nothing said
    smaller = agg.domains
    assert smaller is not None
    agg.domains = smaller[smaller["name"] != "z"].reset_index(drop=True)
    agg.groups = agg.groups[agg.groups["name"] != "B"].reset_index(drop=True)
    notes = vanished_notes(previous, agg)
    assert any("domain(s) ['z']" in n and previous.id in n for n in notes)
    assert any("group(s) ['B']" in n for n in notes)
