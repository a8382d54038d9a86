"""Synthetic worlds with a known answer: corpora and benchmarks where the right mixture is known.

- :mod:`.planted`: the seeded *planted-skill world*: K skill domains, each the only source of one
  multiple-choice benchmark, plus distractor domains and an optional domain of wrong facts.
"""

from automixer_core.worlds.planted import (
    RELATIONS,
    PlantedWorldConfig,
    fact_question,
    fact_sentence,
    write_planted_world,
)

__all__ = ["RELATIONS", "PlantedWorldConfig", "fact_question", "fact_sentence", "write_planted_world"]
