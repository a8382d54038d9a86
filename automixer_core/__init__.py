"""AutoMixer core library: checkpoints, benchmarks, evaluation, influence, aggregation.

Values in, values out. Nothing here imports Prefect or s3fs (storage goes through fsspec in
:mod:`automixer_core.store`).
"""

__version__ = "0.1.0"
