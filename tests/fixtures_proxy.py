"""Session fixture ``proxy_run``: a real tiny proxy trained on a sample of the real corpus.

d=64, 2 layers, vocab 2048, seq 128, batch 16, 100 steps, a checkpoint every 15 steps (7 in
all: 15, 30, ..., 90, 100) on the first 60 documents of each of the 9 domains. About 10 s on one
thread (≈25K tokens/s training); the loss falls from ≈ln(2048)=7.6 to ≈6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from automixer_core.proxy import ProxyConfig, ProxyRunResult, train_proxy

PROXY_RUN_CONFIG = ProxyConfig(
    hidden=64,
    layers=2,
    heads=4,
    kv_heads=2,
    intermediate=128,
    vocab_size=2048,
    seq_len=128,
    batch_size=16,
    steps=100,
    lr=3e-3,
    warmup=10,
    save_every=15,
    max_docs_per_group=60,
    tokenizer_docs=300,
    seed=0,
    num_threads=1,
)


@dataclass(frozen=True)
class ProxyRun:
    """A finished proxy run: its folder (``checkpoint-<step>/`` sub-folders), result and inputs."""

    path: Path
    result: ProxyRunResult
    config: ProxyConfig
    corpus_uri: str

    @property
    def checkpoints(self) -> list[Path]:
        """The checkpoint folders, by step."""
        return [Path(c.uri) for c in self.result.checkpoints]


@pytest.fixture(scope="session")
def proxy_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> ProxyRun:
    """Train the tiny proxy once per session on ``shared_data/corpus``; returns the run folder and result."""
    corpus = str(shared_data / "corpus")
    out = tmp_path_factory.mktemp("proxy-run") / "run"
    result = train_proxy(PROXY_RUN_CONFIG, corpus, str(out), progress=False)
    return ProxyRun(path=out, result=result, config=PROXY_RUN_CONFIG, corpus_uri=corpus)
