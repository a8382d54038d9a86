"""Influence engine: query vectors and one-pass document scoring (DESIGN §1.3, §2).

Public API:

- :class:`InfluenceConfig` — estimator, Adam flag, layers, DataInf sample, batching, precision.
- :func:`build_query_vectors` — per checkpoint, the K benchmark query vectors w_b.
- :class:`QueryVectors` — stacked query vectors; ``to_bytes``/``from_bytes`` (safetensors).
- :func:`score_documents` — a stream of tokenized documents → :class:`ScoreResult` [D × K].
- :func:`write_scores_parquet` / :func:`read_scores_parquet` — per-shard score files.
- :func:`select_blocks` — the parameter blocks P of a layer selection.
"""

from typing import TYPE_CHECKING

from automixer_core.lazy import lazy_exports

if TYPE_CHECKING:
    from automixer_core.influence.config import InfluenceConfig
    from automixer_core.influence.params import ParamBlock, select_blocks
    from automixer_core.influence.queries import QueryVectors, build_query_vectors
    from automixer_core.influence.scorer import ScoreResult, score_documents
    from automixer_core.influence.scores_io import read_scores_parquet, write_scores_parquet

if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would make every name Any
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "automixer_core.influence.config": ["InfluenceConfig"],
            "automixer_core.influence.params": ["ParamBlock", "select_blocks"],
            "automixer_core.influence.queries": ["QueryVectors", "build_query_vectors"],
            "automixer_core.influence.scorer": ["ScoreResult", "score_documents"],
            "automixer_core.influence.scores_io": ["read_scores_parquet", "write_scores_parquet"],
        },
    )

__all__ = [
    "InfluenceConfig",
    "ParamBlock",
    "QueryVectors",
    "ScoreResult",
    "build_query_vectors",
    "read_scores_parquet",
    "score_documents",
    "select_blocks",
    "write_scores_parquet",
]
