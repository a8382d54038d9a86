"""A seeded *planted-skill world*: a corpus and benchmarks where the right mixture is known.

:func:`write_planted_world` writes a folder with the layout of ``../shared/data``::

    <out>/corpus/<domain>/part-00000.jsonl           {"id", "text", "domain"} per document
    <out>/benchmarks/planted_<k>/train.jsonl         ARC schema: {"id", "question",
    <out>/benchmarks/planted_<k>/validation.jsonl      "choices": {"text", "label"}, "answerKey"}
    <out>/benchmarks/planted_<k>.yaml                a custom benchmark (automixer_core.benchmarks.custom)
    <out>/world.json                                 the ground truth (see below)

The world
---------
- **Skill domains** ``skill_1 .. skill_K``. Domain k states facts ``The <relation_k> of <entity> is
  <value>.`` about made-up entities (random syllable words, unique across the whole world, so an
  entity's name occurs in one skill domain only), one sentence per line, mixed with a little
  filler prose of that domain (a themed "register" with common words). Each relation has its own
  four common-word values (colours, cities, animals, numbers as words, ...); no value word is used
  by two relations or by any filler, and the values are balanced over a domain's entities (each is
  gold for a quarter of them), so knowing the relation but not the entity gives exactly chance.
- **Benchmarks** ``planted_1 .. planted_K``: benchmark k asks domain k's facts as 4-way multiple
  choice: question ``The <relation_k> of <entity> is``, choices = the relation's four values in a
  seeded order per question, gold = the planted value. The YAML uses ``prompt: "{question}"`` and
  ``target_delimiter: " "``, so context + gold continuation is exactly the corpus sentence (minus
  its full stop), and a corpus line starts the way an evaluation context starts (``The`` after a
  newline, not `` The``, is the same BPE token as at the start of a prompt). About a quarter of each
  domain's entities (``train_fraction``) form the ``train`` split (the influence queries), the
  rest ``validation`` (the evaluation); the two never share an entity, and the corpus states the
  facts of both (a query must point at the domain that teaches the evaluated facts).
- **Distractor domains** ``noise_1 .. noise_D``: facts about other made-up entities, each entity
  with one relation that no benchmark asks (``distractor_relations`` per domain, values unused
  elsewhere), plus more plain prose about those entities. A
  distractor has about 4.5 times the characters of a skill domain, so natural token shares
  under-sample the skills (30% of the characters by default) and uniform-over-domains sampling
  gives the distractors D/(K+D) of the budget: an influence-based mixture has something to win.
- **Wrong facts** (``wrong_facts=k``, optional): one more domain ``wrong_<k>`` laid out like
  ``skill_<k>`` (same entities, train and validation alike, same statement frequencies, same
  number of documents) whose every fact states a value other than the planted one (a fixed wrong
  value per entity, so the contradiction is consistent). Sampled at the same rate as ``skill_<k>``
  it drags benchmark k to a coin flip between two values (measured: planted_1 ends at 0.48 instead
  of 1.00); a mixture should give it weight 0.

Why these sizes (measured with the demo proxy by ``bench/planted_world.py``: 2 layers, d=64,
vocabulary 4096, 480 steps of 16 × 128 tokens, uniform over domains):

- Under uniform-over-domains sampling every domain gets the same training tokens, so how often a
  fact is seen is set by its domain's entity count, not by the corpus size. The skill domains
  therefore have a geometric ramp of entity counts over ``entities_range`` (134, 268, 536, 1072):
  fewer entities = each fact seen more often = learned earlier. The smallest gives 100 validation
  questions (stderr of acc about 0.05 near 0.5).
- Statements follow a Zipf law over a random ranking of a domain's entities (``zipf=1``; every
  fact at least once). With equally frequent facts this proxy stayed at chance on every relation
  until a sudden jump late in the run (steps 360-420) and a skill of 400 entities was never
  learned; with a frequent head every relation starts to be learned at steps 240-300 and the tail
  follows at a rate set by the entity count (imbalanced fact frequencies shorten the plateau that
  precedes recall).
- One distractor relation per entity: with two relations per entity (the value depends on the
  pair) this proxy never learned the distractor facts at all.
- One filler sentence per 12 facts: filler only dilutes the facts.
- Measured with the defaults, acc at steps 240/300/360/420/480 (seed 0; seed 1 is alike):
  planted_1 0.48/0.96/1.00/1.00/1.00, planted_2 0.26/0.54/0.90/0.99/1.00,
  planted_3 0.25/0.38/0.65/0.85/0.90, planted_4 0.25/0.28/0.39/0.46/0.53 (chance 0.25; all at
  chance up to step 180). Values of a relation have equal lengths, so acc_norm equals acc.
- Statements are shuffled over the documents, so any prefix of a domain's documents (the demo
  scores the first 100) is a random sample of it; documents stay well under 2,000 characters and
  1,000 documents per domain (the demo's limits). The default corpus is about 1.2 MB.

World file (``world.json``)
---------------------------
``format``; ``config`` (:meth:`PlantedWorldConfig.to_dict`); ``benchmarks``: per benchmark its
``domain`` (the one that teaches it), ``relation``, ``values``, entity and question counts,
``yaml`` path and ``contradicted_by`` (the wrong-facts domain or null); ``distractors`` (the noise
domain names); ``wrong_facts`` (null or ``{"domain", "benchmark"}``); ``domains``: per domain its
``role`` (skill / distractor / wrong_facts), ``benchmark`` (for skill and wrong_facts),
``documents``, ``characters`` and ``facts`` (fact sentences stated); ``total_characters``. Files
are written in a fixed key order with ``\\n`` line ends, and every random choice comes from a
generator seeded by (seed, purpose): the same config gives byte-identical files.

Using it in a run config
------------------------
The benchmarks are custom YAML benchmarks. ``BenchmarksConfig.names`` lists *registered* names and
defaults to the eight paper benchmarks, so set it to ``[]`` and list the YAML files under
``custom`` (their names come from the YAML; a custom name under ``names`` fails, as does leaving
``names`` at its default without a ``data_dir``). No ``data_dir`` is needed: each YAML lists its
files relative to itself::

    benchmarks:
      names: []
      custom: [<out>/benchmarks/planted_1.yaml, <out>/benchmarks/planted_2.yaml, ...]
      eval_limit: 200        # a seeded sample where validation is larger (planted_3, planted_4)
      query_limit: 64        # all train rows where there are fewer (planted_1 has 34)
    corpus:
      uri: <out>/corpus      # domain labels come from each row's "domain"

and train the proxy on ``<out>/corpus`` (``automixer proxy-train --corpus <out>/corpus``).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from automixer_core.errors import ConfigError

FORMAT = "automixer-planted-world/1"
CHOICE_LABELS: tuple[str, str, str, str] = ("A", "B", "C", "D")

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


@dataclass(frozen=True)
class PlantedWorldConfig:
    """How to build a planted-skill world. Invalid values raise :class:`ConfigError` naming the field.

    Attributes:
        seed: the seed of every random choice (names, splits, values, documents).
        k: skill domains ``skill_1..k`` and benchmarks ``planted_1..k``.
        distractors: distractor domains ``noise_1..distractors`` (0 for none).
        entities_per_skill: entities of each skill domain (one count per skill), or None for a
            geometric ramp over ``entities_range`` (skill 1 smallest, learned first).
        entities_range: (fewest, most) entities of the ramp.
        train_fraction: share of each skill domain's entities in the ``train`` (query) split.
        zipf: within a skill domain, the fact of the entity of (random) rank r is stated in
            proportion to ``r ** -zipf`` (0: every fact equally often); at least once each.
        docs_per_domain: documents of each skill domain (and of the wrong-facts domain).
        facts_per_doc: fact sentences per skill (and wrong-facts) document.
        filler_per_doc: filler sentences per skill (and wrong-facts) document.
        distractor_docs: documents of each distractor domain.
        distractor_entities: made-up entities of each distractor domain (each with one of its relations).
        distractor_relations: relations (not asked by any benchmark) per distractor domain.
        distractor_facts_per_doc: fact sentences (about the distractor's own entities) per distractor document.
        distractor_prose_per_doc: prose sentences per distractor document.
        wrong_facts: None, or k: add a domain ``wrong_<k>`` stating wrong values for benchmark k.
    """

    seed: int = 0
    k: int = 4
    distractors: int = 2
    entities_per_skill: tuple[int, ...] | None = None
    entities_range: tuple[int, int] = (134, 1072)
    train_fraction: float = 0.25
    zipf: float = 1.0
    docs_per_domain: int = 200
    facts_per_doc: int = 12
    filler_per_doc: int = 1
    distractor_docs: int = 400
    distractor_entities: int = 48
    distractor_relations: int = 2
    distractor_facts_per_doc: int = 12
    distractor_prose_per_doc: int = 10
    wrong_facts: int | None = None

    def __post_init__(self) -> None:
        # accept lists (from JSON or YAML) for the tuple fields
        if isinstance(self.entities_per_skill, list):
            object.__setattr__(self, "entities_per_skill", tuple(self.entities_per_skill))
        if isinstance(self.entities_range, list):
            object.__setattr__(self, "entities_range", tuple(self.entities_range))
        self.validate()

    # --- validation -------------------------------------------------------------------------------

    @staticmethod
    def _bad(field: str, value: Any, expected: str, fix: str) -> ConfigError:
        return ConfigError(
            f"PlantedWorldConfig field {field!r} is {value!r}", expected=expected, fix=f"set {field} {fix}"
        )

    def validate(self) -> None:
        """Check that the world can be built. Raises ConfigError naming the field, value and fix."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("entities_per_skill", "entities_range", "wrong_facts", "train_fraction", "zipf"):
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise self._bad(f.name, value, "an integer", "to an integer")
        if self.k < 1:
            raise self._bad("k", self.k, "at least 1 skill", "to 1 or more")
        if self.distractors < 0:
            raise self._bad("distractors", self.distractors, "0 or more", "to 0 or more")
        if self.distractor_relations < 1:
            raise self._bad("distractor_relations", self.distractor_relations, "at least 1", "to 1 or more")
        needed = self.k + self.distractors * self.distractor_relations
        if needed > len(RELATIONS):
            raise self._bad(
                "k",
                self.k,
                f"k + distractors × distractor_relations ≤ {len(RELATIONS)} (the relations available); "
                f"this config needs {needed}",
                "lower (or lower distractors or distractor_relations)",
            )
        lo_hi = self.entities_range
        if (
            not isinstance(lo_hi, tuple)
            or len(lo_hi) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in lo_hi)
            or not 8 <= lo_hi[0] <= lo_hi[1]
        ):
            raise self._bad(
                "entities_range",
                lo_hi,
                "(fewest, most) integers with 8 ≤ fewest ≤ most",
                "to e.g. (134, 1072)",
            )
        if self.entities_per_skill is not None:
            counts = self.entities_per_skill
            if not isinstance(counts, tuple) or len(counts) != self.k:
                raise self._bad(
                    "entities_per_skill",
                    counts,
                    f"one count per skill ({self.k})",
                    f"to {self.k} counts or None",
                )
            if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 8 for x in counts):
                raise self._bad("entities_per_skill", counts, "integers ≥ 8", "to counts of 8 or more")
        tf = self.train_fraction
        if isinstance(tf, bool) or not isinstance(tf, int | float) or not 0 < tf < 1:
            raise self._bad("train_fraction", tf, "a number strictly between 0 and 1", "to e.g. 0.25")
        z = self.zipf
        if isinstance(z, bool) or not isinstance(z, int | float) or not 0 <= z <= 3:
            raise self._bad("zipf", z, "a number from 0 to 3", "to e.g. 0.5 (0: uniform)")
        for name in ("docs_per_domain", "facts_per_doc"):
            if getattr(self, name) < 1:
                raise self._bad(name, getattr(self, name), "at least 1", "to 1 or more")
        for name in ("filler_per_doc", "distractor_facts_per_doc", "distractor_prose_per_doc"):
            if getattr(self, name) < 0:
                raise self._bad(name, getattr(self, name), "0 or more", "to 0 or more")
        most = max(self.entity_counts())
        if self.docs_per_domain * self.facts_per_doc < most:
            raise self._bad(
                "docs_per_domain",
                self.docs_per_domain,
                f"docs_per_domain × facts_per_doc ≥ {most} (the largest skill's entities), so every "
                "fact is stated at least once",
                f"to at least {-(-most // self.facts_per_doc)} (or raise facts_per_doc)",
            )
        if self.distractors:
            for name in ("distractor_docs", "distractor_entities"):
                if getattr(self, name) < 1:
                    raise self._bad(
                        name, getattr(self, name), "at least 1 when distractors > 0", "to 1 or more"
                    )
            if self.distractor_facts_per_doc + self.distractor_prose_per_doc < 1:
                raise self._bad(
                    "distractor_prose_per_doc",
                    self.distractor_prose_per_doc,
                    "at least one sentence per distractor document (facts or prose)",
                    "to 1 or more (or raise distractor_facts_per_doc)",
                )
            stated = self.distractor_docs * self.distractor_facts_per_doc
            if self.distractor_facts_per_doc and stated < self.distractor_entities:
                raise self._bad(
                    "distractor_entities",
                    self.distractor_entities,
                    f"at most distractor_docs × distractor_facts_per_doc = {stated}, so every "
                    "distractor fact is stated at least once",
                    f"to {stated} or fewer (or raise distractor_docs)",
                )
        if self.wrong_facts is not None and (
            not isinstance(self.wrong_facts, int)
            or isinstance(self.wrong_facts, bool)
            or not 1 <= self.wrong_facts <= self.k
        ):
            raise self._bad(
                "wrong_facts", self.wrong_facts, f"None or a skill number 1..{self.k}", "to None or 1..k"
            )

    # --- derived ----------------------------------------------------------------------------------

    def entity_counts(self) -> tuple[int, ...]:
        """Entities of each skill domain: ``entities_per_skill``, or the geometric ramp over ``entities_range``."""
        if self.entities_per_skill is not None:
            return tuple(self.entities_per_skill)
        lo, hi = self.entities_range
        if self.k == 1:
            return (lo,)
        return tuple(round(lo * (hi / lo) ** (i / (self.k - 1))) for i in range(self.k))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists) that :meth:`from_dict` reads back."""
        d = asdict(self)
        d["entities_range"] = list(self.entities_range)
        if self.entities_per_skill is not None:
            d["entities_per_skill"] = list(self.entities_per_skill)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlantedWorldConfig:
        """The config from a dict (e.g. ``world.json["config"]``). Unknown keys raise ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"PlantedWorldConfig has no field {unknown[0]!r}",
                expected=f"fields among {sorted(known)}",
                fix=f"remove {unknown[0]!r}",
            )
        return cls(**data)

    @classmethod
    def small_wrong_facts(cls, docs: int = 40) -> PlantedWorldConfig:
        """A small world with wrong facts, quick to learn: 2 skills (20 to 40 entities), 1
        distractor and ``wrong_1``, ``docs`` documents a domain (the end-to-end test's world and
        ``bench/saturated_world.py``'s)."""
        return cls(
            k=2,
            distractors=1,
            wrong_facts=1,
            entities_range=(20, 40),
            docs_per_domain=docs,
            distractor_docs=docs,
        )


# --- generation helpers -------------------------------------------------------------------------------


def fact_sentence(relation: str, entity: str, value: str) -> str:
    """The corpus sentence of a fact: ``The <relation> of <entity> is <value>.``"""
    return f"{fact_question(relation, entity)} {value}."


def fact_question(relation: str, entity: str) -> str:
    """The benchmark question of a fact: ``The <relation> of <entity> is``."""
    return f"The {relation} of {entity} is"


def _rng(seed: int, *parts: object) -> random.Random:
    """An independent generator per (seed, purpose): stable across Python versions and processes."""
    key = "|".join(str(p) for p in (seed, *parts)).encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


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


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(_dumps(row) + "\n")


def _question_rows(
    rng: random.Random,
    name: str,
    split: str,
    relation: str,
    values: Sequence[str],
    items: Sequence[tuple[str, str]],
) -> list[dict[str, Any]]:
    rows = []
    for i, (entity, gold) in enumerate(items):
        choices = list(values)
        rng.shuffle(choices)
        rows.append(
            {
                "id": f"{name}-{split}-{i:04d}",
                "question": fact_question(relation, entity),
                "choices": {"text": choices, "label": list(CHOICE_LABELS)},
                "answerKey": CHOICE_LABELS[choices.index(gold)],
            }
        )
    return rows


def _benchmark_yaml(name: str) -> str:
    spec = {
        "name": name,
        "prompt": "{question}",
        "choices": "choices.text",
        "label": "answerKey",
        "choice_labels": "choices.label",
        "target_delimiter": " ",
        "eval_split": "validation",
        "query_split": "train",
        "files": {"validation": f"{name}/validation.jsonl", "train": f"{name}/train.jsonl"},
    }
    text: str = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    return text


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"Output {out} is a file", expected="a folder (new or empty)", fix="choose a folder"
        )
    if out.is_dir() and any(out.iterdir()):
        ours = (out / "world.json").is_file()
        if not overwrite or not ours:
            raise ConfigError(
                f"Output folder {out} is not empty"
                + ("" if ours else " and holds no world.json (it is not a planted world)"),
                expected="a new or empty folder, or an earlier planted world with overwrite=True",
                fix="choose another folder" + (", or pass overwrite=True" if ours else ""),
            )
        for sub in ("corpus", "benchmarks"):
            shutil.rmtree(out / sub, ignore_errors=True)
        (out / "world.json").unlink()
    out.mkdir(parents=True, exist_ok=True)


# --- the world ---------------------------------------------------------------------------------------


def write_planted_world(
    out: str | Path, config: PlantedWorldConfig | None = None, *, overwrite: bool = False
) -> dict[str, Any]:
    """Write a planted-skill world under ``out`` and return its ``world.json`` content.

    Args:
        out: a new or empty folder (created with its parents).
        config: the world to build (default: :class:`PlantedWorldConfig` ()).
        overwrite: replace an earlier planted world in ``out`` (only its ``corpus/``,
            ``benchmarks/`` and ``world.json`` are removed).

    Raises:
        ConfigError: the config is impossible, or ``out`` is not empty (and not an earlier world
            with ``overwrite=True``).
    """
    cfg = config if config is not None else PlantedWorldConfig()
    cfg.validate()
    root = Path(out)
    _prepare_out(root, overwrite)

    counts = cfg.entity_counts()
    taken: set[str] = set()
    name_rng = _rng(cfg.seed, "names")
    corpus: dict[str, list[str]] = {}
    domains: dict[str, dict[str, Any]] = {}
    benchmarks: dict[str, dict[str, Any]] = {}
    wrong_domain = f"wrong_{cfg.wrong_facts}" if cfg.wrong_facts is not None else None

    for k in range(1, cfg.k + 1):
        relation, values = RELATIONS[k - 1]
        domain, bench = f"skill_{k}", f"planted_{k}"
        n = counts[k - 1]
        entities = _make_names(name_rng, n, taken)
        rng = _rng(cfg.seed, "skill", k)
        gold = [values[i % len(values)] for i in range(n)]
        rng.shuffle(gold)
        order = list(range(n))
        rng.shuffle(order)
        n_train = min(n - 1, max(1, round(n * cfg.train_fraction)))
        train_ids, val_ids = sorted(order[:n_train]), sorted(order[n_train:])
        facts = [(relation, entities[i], gold[i]) for i in range(n)]
        ranks = list(range(1, n + 1))
        rng.shuffle(ranks)  # frequency rank of each entity, independent of its split
        weights = [r ** -float(cfg.zipf) for r in ranks]
        theme = _THEMES[(k - 1) % len(_THEMES)] + ("" if k <= len(_THEMES) else f" {k}")
        corpus[domain] = _fact_documents(
            rng,
            facts,
            weights,
            cfg.docs_per_domain,
            cfg.facts_per_doc,
            partial(_filler, theme=theme),
            cfg.filler_per_doc,
        )
        qrng = _rng(cfg.seed, "questions", k)
        splits = {
            "train": _question_rows(
                qrng, bench, "train", relation, values, [(entities[i], gold[i]) for i in train_ids]
            ),
            "validation": _question_rows(
                qrng, bench, "validation", relation, values, [(entities[i], gold[i]) for i in val_ids]
            ),
        }
        for split, rows in splits.items():
            _write_jsonl(root / "benchmarks" / bench / f"{split}.jsonl", rows)
        yaml_path = root / "benchmarks" / f"{bench}.yaml"
        yaml_path.write_text(_benchmark_yaml(bench), encoding="utf-8", newline="\n")
        benchmarks[bench] = {
            "domain": domain,
            "relation": relation,
            "values": list(values),
            "entities": n,
            "train": len(train_ids),
            "validation": len(val_ids),
            "yaml": f"benchmarks/{bench}.yaml",
            "contradicted_by": wrong_domain if cfg.wrong_facts == k else None,
        }
        domains[domain] = {"role": "skill", "benchmark": bench}

        if cfg.wrong_facts == k and wrong_domain is not None:
            wrng = _rng(cfg.seed, "wrong", k)
            wrong_facts = [
                (relation, entities[i], wrng.choice([v for v in values if v != gold[i]])) for i in range(n)
            ]
            corpus[wrong_domain] = _fact_documents(
                wrng,
                wrong_facts,
                weights,
                cfg.docs_per_domain,
                cfg.facts_per_doc,
                partial(_filler, theme=_WRONG_THEME),
                cfg.filler_per_doc,
            )
            domains[wrong_domain] = {"role": "wrong_facts", "benchmark": bench}

    noise_names = []
    for j in range(1, cfg.distractors + 1):
        domain = f"noise_{j}"
        noise_names.append(domain)
        first = cfg.k + (j - 1) * cfg.distractor_relations
        relations = RELATIONS[first : first + cfg.distractor_relations]
        names = _make_names(name_rng, cfg.distractor_entities, taken)
        rng = _rng(cfg.seed, "noise", j)
        # one relation per entity (taken in turn), so a distractor fact is learnable like a skill fact
        facts = [
            (relations[i % len(relations)][0], e, rng.choice(relations[i % len(relations)][1]))
            for i, e in enumerate(names)
            if cfg.distractor_facts_per_doc
        ]
        corpus[domain] = _fact_documents(
            rng,
            facts,
            [1.0] * len(facts),
            cfg.distractor_docs,
            cfg.distractor_facts_per_doc,
            partial(_prose, names=names),
            cfg.distractor_prose_per_doc,
        )
        domains[domain] = {"role": "distractor", "relations": [rel for rel, _ in relations]}

    for domain, docs in corpus.items():
        rows = [{"id": f"{domain}-{i:05d}", "text": text, "domain": domain} for i, text in enumerate(docs)]
        _write_jsonl(root / "corpus" / domain / "part-00000.jsonl", rows)
        domains[domain].update(
            documents=len(docs),
            characters=sum(len(t) for t in docs),
            facts=len(docs)
            * (cfg.distractor_facts_per_doc if domain.startswith("noise_") else cfg.facts_per_doc),
        )

    world: dict[str, Any] = {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "benchmarks": benchmarks,
        "distractors": noise_names,
        "wrong_facts": (
            {"domain": wrong_domain, "benchmark": f"planted_{cfg.wrong_facts}"} if wrong_domain else None
        ),
        "domains": {d: domains[d] for d in sorted(domains)},
        "total_characters": sum(domains[d]["characters"] for d in domains),
    }
    (root / "world.json").write_text(json.dumps(world, indent=2) + "\n", encoding="utf-8", newline="\n")
    return world
