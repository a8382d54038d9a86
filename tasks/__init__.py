"""Prefect tasks: thin adapters that read inputs from the store, call automixer_core, write results
atomically to deterministic keys, and return small references (keys, digests, a few numbers)."""
