"""The config of a planted-skill world: :class:`PlantedWorldConfig` (its fields, their checks and
the derived entity counts), and why its defaults are what they are.

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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from automixer_core.errors import ConfigError
from automixer_core.worlds.planted.text import RELATIONS


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
