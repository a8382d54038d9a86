"""The evaluate flow on a real Prefect API, a real proxy run, the real benchmarks; local and S3 stores."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from automixer_core.config import RunConfig
from automixer_core.selection import select_artifacts
from automixer_core.store import Store
from flows.evaluate import evaluate_flow

pytestmark = pytest.mark.slow

BENCHES = ["arc_easy", "piqa", "winogrande"]


def _config(store: str, checkpoints: str, data_dir: Path, limit: int = 8) -> RunConfig:
    return RunConfig.model_validate(
        {
            "store": store,
            "checkpoints": {"uri": checkpoints},
            "benchmarks": {
                "names": BENCHES,
                "data_dir": str(data_dir),
                "eval_limit": limit,
                "query_limit": 8,
            },
        }
    )


def _table(store: Store, report: dict[str, Any], name: str) -> pd.DataFrame:
    raw = store.read_bytes(report["keys"][name])
    return pd.read_parquet(io.BytesIO(raw)) if name.endswith(".parquet") else pd.read_csv(io.BytesIO(raw))


def test_evaluate_flow_local_is_incremental(
    prefect_api: None, proxy_run: Any, shared_data: Path, tmp_path: Path
) -> None:
    n_ckpt = len(proxy_run.checkpoints)
    data = tmp_path / "data"
    shutil.copytree(shared_data / "benchmarks", data / "benchmarks")
    cfg = _config(str(tmp_path / "store"), str(proxy_run.path), data)

    first = evaluate_flow(cfg)
    assert first["pairs"] == n_ckpt * len(BENCHES)
    assert first["computed"] == first["pairs"]
    store = Store(cfg.store)
    evals = _table(store, first, "evals.parquet")
    assert len(evals) == n_ckpt * len(BENCHES)
    assert set(evals["benchmark"]) == set(BENCHES)
    assert evals["step"].nunique() == n_ckpt
    assert evals["n"].eq(8).all()
    assert evals["acc"].between(0, 1).all() and evals["acc_norm"].between(0, 1).all()
    selection = _table(store, first, "selection.csv")
    expected = select_artifacts(evals)
    assert selection["checkpoint"].tolist() == expected["checkpoint"].tolist()
    assert store.read_bytes(first["keys"]["capability.png"])[:8] == b"\x89PNG\r\n\x1a\n"

    # Nothing changed: no model runs, same numbers.
    second = evaluate_flow(cfg)
    assert second["computed"] == 0
    pd.testing.assert_frame_equal(_table(store, second, "evals.parquet"), evals)

    # One benchmark file changed: exactly its evaluations run again, one per checkpoint.
    path = data / "benchmarks" / "piqa" / "validation.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    third = evaluate_flow(cfg)
    assert third["computed"] == n_ckpt


def test_evaluate_flow_on_s3(prefect_api: None, proxy_run: Any, shared_data: Path, s3_bucket: str) -> None:
    cfg = _config(f"{s3_bucket}/automixer", str(proxy_run.path), shared_data, limit=4)
    first = evaluate_flow(cfg)
    assert first["computed"] == first["pairs"] > 0
    store = Store(cfg.store)
    assert first["uris"]["evals.csv"].startswith("s3://")
    assert len(store.list("evals")) == 2 * first["pairs"]  # summary + per-example parquet each
    assert evaluate_flow(cfg)["computed"] == 0
