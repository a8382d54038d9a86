"""The words of a planted-skill world and the text made from them.

The relations and their values (:data:`RELATIONS`), the themes and common-word lists of filler and
prose, made-up entity names (syllable words that collide with no listed word), fact sentences and
benchmark questions, filler and prose sentences, and documents that state facts at set
frequencies (:func:`_statement_counts`, :func:`_fact_documents`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

#: (relation, its four values). Skill k uses relation k-1; distractors use the ones after the
#: skills. No value word belongs to two relations, and no filler word is a value.
RELATIONS: tuple[tuple[str, tuple[str, str, str, str]], ...] = (
    ("colour", ("green", "black", "white", "brown")),
    ("city", ("Paris", "Tokyo", "Cairo", "Seoul")),
    ("animal", ("horse", "tiger", "eagle", "shark")),
    ("number", ("three", "seven", "eight", "fifty")),
    ("metal", ("gold", "iron", "zinc", "lead")),
    ("fruit", ("apple", "lemon", "mango", "grape")),
    ("instrument", ("piano", "flute", "cello", "banjo")),
    ("season", ("spring", "summer", "autumn", "winter")),
    ("gem", ("ruby", "jade", "opal", "onyx")),
    ("sport", ("tennis", "hockey", "soccer", "boxing")),
    ("flower", ("tulip", "daisy", "lotus", "poppy")),
    ("tree", ("maple", "cedar", "birch", "aspen")),
    ("drink", ("milk", "wine", "beer", "soda")),
    ("fabric", ("silk", "wool", "jute", "lace")),
    ("bird", ("crow", "swan", "dove", "hawk")),
    ("tool", ("hammer", "chisel", "wrench", "shovel")),
    ("river", ("Thames", "Danube", "Amazon", "Ganges")),
    ("mood", ("happy", "angry", "tired", "proud")),
    ("material", ("stone", "glass", "brick", "steel")),
    ("dish", ("pasta", "curry", "bread", "salad")),
)

_THEMES = (
    "old archive",
    "harbour ledger",
    "village almanac",
    "guild register",
    "temple scroll",
    "family chronicle",
    "court record",
    "merchant diary",
    "school yearbook",
    "county census",
    "travel journal",
    "museum catalogue",
)
_WRONG_THEME = "rumour sheet"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_ADJ: tuple[str, ...] = _words(
    "quiet narrow ancient busy distant humble wide gentle steady plain crowded early small large careful patient"
)
_PERSON: tuple[str, ...] = _words(
    "clerk farmer sailor teacher merchant baker scribe miller weaver carpenter porter shepherd doctor soldier"
)
_PLACE: tuple[str, ...] = _words(
    "valley harbour market library village hall square bridge courtyard station garden tavern chapel workshop"
)
_VERB: tuple[str, ...] = _words(
    "copied checked counted sorted repaired carried signed stored cleaned painted bought moved"
)
_OBJECT: tuple[str, ...] = _words(
    "pages boxes letters records baskets lists maps notes crates books lamps ropes"
)
_TIME: tuple[str, ...] = (
    "in the morning",
    "before noon",
    "after dark",
    "at dawn",
    "last week",
    "every year",
    "on market days",
    "during the rain",
    "at night",
    "after the harvest",
)

_FILLER = (
    "This page of the {theme} was {verb} by a {adj} {person}.",
    "The {person} {verb} the {obj} of the {theme} {time}.",
    "A {adj} {person} kept the {theme} near the {place}.",
    "Most {obj} in the {theme} were {verb} {time}.",
    "Nobody at the {place} has read the whole {theme}.",
    "The {theme} was stored in a {adj} room above the {place}.",
)
_PROSE = (
    "{e} walked to the {place} {time} and met a {adj} {person}.",
    "{e} {verb} the {obj} while the {person} waited by the {place}.",
    "Nobody in the {place} remembers when {e} first arrived.",
    "The {person} told {e} that the {obj} had been {verb} {time}.",
    "{e} and {e2} shared a {adj} table at the {place}.",
    "Later {e} {verb} a few {obj} for the {adj} {person}.",
    "{e} left the {place} {time} with two {obj}.",
    "People say {e} is a {adj} {person} from the {place}.",
)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "r", "l", "s", "k", "m")


def fact_sentence(relation: str, entity: str, value: str) -> str:
    """The corpus sentence of a fact: ``The <relation> of <entity> is <value>.``"""
    return f"{fact_question(relation, entity)} {value}."


def fact_question(relation: str, entity: str) -> str:
    """The benchmark question of a fact: ``The <relation> of <entity> is``."""
    return f"The {relation} of {entity} is"


def _reserved_words() -> set[str]:
    words: set[str] = set()
    for relation, values in RELATIONS:
        words.update(w.lower() for w in relation.split())
        words.update(v.lower() for v in values)
    for group in (_ADJ, _PERSON, _PLACE, _VERB, _OBJECT, _THEMES, _TIME, (_WRONG_THEME,)):
        for phrase in group:
            words.update(w.lower() for w in phrase.split())
    words.update({"the", "of", "is", "a", "and", "by", "in", "at", "to"})
    return words


def _make_names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    """``n`` new capitalised syllable words (2 or 3 syllables), none in ``taken`` (which is updated)."""
    reserved = _reserved_words()
    out: list[str] = []
    while len(out) < n:
        syllables = rng.choice((2, 2, 3))
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        name = word.capitalize()
        if name in taken or word in reserved or len(word) < 4:
            continue
        taken.add(name)
        out.append(name)
    return out


def _slots(rng: random.Random) -> dict[str, str]:
    """The common words of a filler or prose sentence (drawn in this order: the files depend on it)."""
    return {
        "verb": rng.choice(_VERB),
        "adj": rng.choice(_ADJ),
        "person": rng.choice(_PERSON),
        "obj": rng.choice(_OBJECT),
        "place": rng.choice(_PLACE),
        "time": rng.choice(_TIME),
    }


def _filler(rng: random.Random, theme: str) -> str:
    template = rng.choice(_FILLER)
    return template.format(theme=theme, **_slots(rng))


def _prose(rng: random.Random, names: Sequence[str]) -> str:
    template = rng.choice(_PROSE)
    e, e2 = rng.sample(list(names), 2) if len(names) > 1 else (names[0], names[0])
    return template.format(e=e, e2=e2, **_slots(rng))


def _statement_counts(weights: Sequence[float], total: int) -> list[int]:
    """How often each fact is stated: at least once, the rest of ``total`` in proportion to
    ``weights`` (largest remainder, ties to the lower index): deterministic, sums to ``total``."""
    n = len(weights)
    if n == 0:
        return []
    spare = total - n
    wsum = float(sum(weights))
    shares = [spare * w / wsum for w in weights]
    counts = [1 + int(x) for x in shares]
    left = total - sum(counts)
    by_remainder = sorted(range(n), key=lambda i: (-(shares[i] - int(shares[i])), i))
    for i in by_remainder[:left]:
        counts[i] += 1
    return counts


def _fact_documents(
    rng: random.Random,
    facts: Sequence[tuple[str, str, str]],
    weights: Sequence[float],
    n_docs: int,
    facts_per_doc: int,
    extra: Callable[[random.Random], str],
    extra_per_doc: int,
) -> list[str]:
    """``n_docs`` documents of ``facts_per_doc`` fact sentences (relation, entity, value) and
    ``extra_per_doc`` other sentences, in a random order, one sentence per line. Fact i is stated
    in proportion to ``weights[i]`` and at least once; the statements are spread at random."""
    counts = _statement_counts(weights, n_docs * facts_per_doc)
    statements = [fact_sentence(*f) for f, c in zip(facts, counts, strict=True) for _ in range(c)]
    rng.shuffle(statements)
    docs: list[str] = []
    for d in range(n_docs):
        lines = statements[d * facts_per_doc : (d + 1) * facts_per_doc]
        lines += [extra(rng) for _ in range(extra_per_doc)]
        rng.shuffle(lines)
        docs.append("\n".join(lines))
    return docs
