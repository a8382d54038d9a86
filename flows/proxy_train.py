"""Flow ``proxy-train``: train a small proxy LM that saves Hugging Face checkpoints."""

from __future__ import annotations

from typing import Any

from prefect import flow

from automixer_core.proxy import ProxyConfig
from tasks.proxy import train_proxy_task


@flow(name="proxy-train", log_prints=True)
def proxy_train_flow(
    corpus: str,
    output: str,
    config: ProxyConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a proxy on ``corpus`` (folder or s3:// prefix of jsonl/parquet), checkpoints to ``output``."""
    return train_proxy_task(config or ProxyConfig(), corpus, output, overwrite=overwrite, progress=progress)
