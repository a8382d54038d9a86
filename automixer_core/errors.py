"""Typed errors. Each says what was found, what was expected, and how to fix it."""

from __future__ import annotations


class AutoMixerError(Exception):
    """Base of every error AutoMixer raises on purpose.

    Args:
        found: what was found (names the thing: a path, a field, a row).
        expected: what was expected instead.
        fix: one actionable sentence.
    """

    def __init__(self, found: str, *, expected: str | None = None, fix: str | None = None) -> None:
        self.found = found
        self.expected = expected
        self.fix = fix
        parts = [found.rstrip(".") + "."]
        if expected:
            parts.append(f"Expected {expected.rstrip('.')}.")
        if fix:
            parts.append(f"Fix: {fix.rstrip('.')}.")
        super().__init__(" ".join(parts))


class ConfigError(AutoMixerError):
    """A config field has a bad value or an unknown key."""


class StorageError(AutoMixerError):
    """A URI cannot be read or written (wrong path, unreachable bucket, missing credentials)."""


class CheckpointError(AutoMixerError):
    """A checkpoint folder is missing, empty, incomplete or corrupt."""


class BenchmarkError(AutoMixerError):
    """A benchmark is unknown, or its data file or a row in it is malformed."""


class CorpusError(AutoMixerError):
    """A corpus location holds no readable documents, or a document is malformed."""


class ModelError(AutoMixerError):
    """A model architecture or module is not supported for the requested operation."""


class InfluenceError(AutoMixerError):
    """An influence estimator cannot run with what was given (e.g. Adam state absent)."""


class ExecutionError(AutoMixerError):
    """The scoring fan-out cannot reach its engine (work pool, Dask cluster) or a unit of it failed."""
