"""Run names of scoring and labelling units: which documents, in words."""

from __future__ import annotations

from tasks.naming import shard_range


def test_shard_range_names_the_files_and_rows() -> None:
    one = [{"file": "howto/part-0.jsonl", "start": 0, "stop": 50, "digest": "a"}]
    assert shard_range(one) == "howto/part-0.jsonl rows 0–49"
    two = [*one, {"file": "math/part-3.jsonl", "start": 50, "stop": 77, "digest": "b"}]
    assert shard_range(two) == "howto/part-0.jsonl:0 … math/part-3.jsonl:50 (2 shards)"
    assert shard_range([]) == "no shards"
