"""The unit every benchmark is turned into: one multiple-choice question as text requests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MultipleChoiceInstance:
    """One question, as the (context, continuation) requests lm-evaluation-harness would send.

    Choice ``i`` is scored as ``log p(continuations[i] | contexts[i])``. For most tasks the contexts
    are all the same prompt and the continuations are ``target_delimiter + choice``; for
    WinoGrande (lm-eval's "partial evaluation") the contexts differ (the sentence up to the blank,
    filled with each option) and the continuation is one shared string.

    Attributes:
        doc_id: row number (0-based) of the question in its split file; stable under sampling.
        contexts: one context string per choice.
        continuations: one continuation string per choice (the target delimiter included).
        gold: index of the correct choice.
        choice_lengths: characters of each choice as lm-eval's ``doc_to_choice`` returns it (no
            delimiter); ``acc_norm`` divides each choice's log-likelihood by this.
    """

    doc_id: int
    contexts: tuple[str, ...]
    continuations: tuple[str, ...]
    gold: int
    choice_lengths: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.contexts)
        if n == 0 or len(self.continuations) != n or len(self.choice_lengths) != n:
            raise ValueError(
                f"doc {self.doc_id}: contexts ({n}), continuations ({len(self.continuations)}) and "
                f"choice_lengths ({len(self.choice_lengths)}) must have one entry per choice"
            )
        if not 0 <= self.gold < n:
            raise ValueError(f"doc {self.doc_id}: gold index {self.gold} is outside 0..{n - 1}")

    @property
    def n_choices(self) -> int:
        """Number of answer choices."""
        return len(self.contexts)

    @property
    def shares_context(self) -> bool:
        """True when every choice has the same context (all tasks here but WinoGrande)."""
        return len(set(self.contexts)) == 1

    def requests(self) -> list[tuple[str, str]]:
        """The (context, continuation) pairs, one per choice, in choice order."""
        return list(zip(self.contexts, self.continuations, strict=True))

    def gold_request(self) -> tuple[str, str]:
        """The (context, continuation) pair of the correct choice."""
        return self.contexts[self.gold], self.continuations[self.gold]
