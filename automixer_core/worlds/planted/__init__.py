"""A seeded *planted-skill world*: a corpus and benchmarks where the right mixture is known.

:func:`write_planted_world` writes a folder with the layout of ``../shared/data``::

    <out>/corpus/<domain>/part-00000.jsonl           {"id", "text", "domain"} per document
    <out>/benchmarks/planted_<k>/train.jsonl         ARC schema: {"id", "question",
    <out>/benchmarks/planted_<k>/validation.jsonl      "choices": {"text", "label"}, "answerKey"}
    <out>/benchmarks/planted_<k>.yaml                a custom benchmark (automixer_core.benchmarks.custom)
    <out>/world.json                                 the ground truth (see :mod:`.world`)

The modules: :mod:`.config` (:class:`PlantedWorldConfig`: its fields, checks and defaults, and
why these sizes), :mod:`.text` (the relations and word lists, made-up names, fact sentences and
questions, filler and prose, documents stating facts at set frequencies), :mod:`.files` (question
rows, benchmark YAML, jsonl writing, preparing the output folder) and :mod:`.world`
(:func:`write_planted_world`, which assembles the world, and the ``world.json`` it writes).

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

from automixer_core.worlds.planted.config import PlantedWorldConfig
from automixer_core.worlds.planted.files import CHOICE_LABELS
from automixer_core.worlds.planted.text import _ADJ as _ADJ
from automixer_core.worlds.planted.text import _OBJECT as _OBJECT
from automixer_core.worlds.planted.text import _PERSON as _PERSON
from automixer_core.worlds.planted.text import _PLACE as _PLACE
from automixer_core.worlds.planted.text import _THEMES as _THEMES
from automixer_core.worlds.planted.text import _TIME as _TIME
from automixer_core.worlds.planted.text import _VERB as _VERB
from automixer_core.worlds.planted.text import RELATIONS, fact_question, fact_sentence
from automixer_core.worlds.planted.world import FORMAT, write_planted_world

__all__ = [
    "CHOICE_LABELS",
    "FORMAT",
    "RELATIONS",
    "PlantedWorldConfig",
    "fact_question",
    "fact_sentence",
    "write_planted_world",
]
