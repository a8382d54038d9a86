"""Reading corpus documents: formats, ids, groups, errors, shards, S3."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from automixer_core.corpus import (
    Document,
    file_digest,
    iter_documents,
    list_corpus_files,
    make_shards,
    read_shard,
)
from automixer_core.errors import CorpusError
from automixer_core.store import Store


def _write_jsonl(path: Path, rows: list[dict], *, gz: bool = False, blank_lines: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for r in rows:
        lines.append(json.dumps(r))
        if blank_lines:
            lines.append("")
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def _write_parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)


def _rows(n: int, prefix: str = "doc") -> list[dict]:
    return [{"text": f"{prefix} number {i}: " + "word " * (i % 5)} for i in range(n)]


# --- real corpus ---------------------------------------------------------------------------------


def test_real_corpus_files_ids_and_domains(shared_data: Path) -> None:
    corpus = shared_data / "corpus"
    files = list_corpus_files(str(corpus))
    assert files == sorted(f"{d.name}/part-00000.jsonl" for d in corpus.iterdir() if d.is_dir())

    dialogue = corpus / "dialogue" / "part-00000.jsonl"
    raw = [json.loads(line) for line in dialogue.read_text().splitlines() if line.strip()]
    docs = list(iter_documents(str(corpus), files=["dialogue/part-00000.jsonl"]))
    assert [d.id for d in docs] == [r["id"] for r in raw]
    assert [d.text for d in docs] == [r["text"] for r in raw]
    assert {d.group for d in docs} == {"dialogue"}
    assert [d.row for d in docs] == list(range(len(raw)))

    first = list(iter_documents(str(corpus), max_docs=3))
    assert [d.file for d in first] == ["code/part-00000.jsonl"] * 3  # sorted key order


# --- formats, ids, groups ------------------------------------------------------------------------


def test_jsonl_gz_and_parquet_give_the_same_documents(tmp_path: Path) -> None:
    rows = _rows(5)
    _write_jsonl(tmp_path / "a" / "x.jsonl", rows, blank_lines=True)  # blank lines are not rows
    _write_jsonl(tmp_path / "b" / "x.jsonl.gz", rows, gz=True)
    _write_parquet(tmp_path / "c" / "x.parquet", rows)
    (tmp_path / "README.md").write_text("not a corpus file")

    assert list_corpus_files(str(tmp_path)) == ["a/x.jsonl", "b/x.jsonl.gz", "c/x.parquet"]
    docs = list(iter_documents(str(tmp_path)))
    assert len(docs) == 15
    for folder, key in [("a", "a/x.jsonl"), ("b", "b/x.jsonl.gz"), ("c", "c/x.parquet")]:
        mine = [d for d in docs if d.file == key]
        assert [d.text for d in mine] == [r["text"] for r in rows]
        assert [d.row for d in mine] == list(range(5))
        assert [d.id for d in mine] == [f"{key}:{i}" for i in range(5)]  # stable id: file + row
        assert {d.group for d in mine} == {folder}  # no domain field: the parent folder


def test_fields_are_configurable_and_domain_beats_folder(tmp_path: Path) -> None:
    rows: list[dict] = [
        {"content": "alpha", "uid": 7, "domain": "math", "topic": "t1"},
        {"content": "beta", "uid": "b", "topic": "t2"},
    ]
    _write_jsonl(tmp_path / "web" / "p.jsonl", rows)
    docs = list(iter_documents(str(tmp_path), text_field="content", id_field="uid"))
    assert docs == [
        Document(id="7", text="alpha", group="math", file="web/p.jsonl", row=0),
        Document(id="b", text="beta", group="web", file="web/p.jsonl", row=1),
    ]
    by_topic = list(iter_documents(str(tmp_path), text_field="content", group_field="topic"))
    assert [d.group for d in by_topic] == ["t1", "t2"]
    assert [d.id for d in by_topic] == ["web/p.jsonl:0", "web/p.jsonl:1"]  # no "id" field

    single = list(iter_documents(str(tmp_path / "web" / "p.jsonl"), text_field="content"))
    assert [d.text for d in single] == ["alpha", "beta"]  # a URI naming one file


# --- errors --------------------------------------------------------------------------------------


def test_empty_missing_and_unreadable_prefix(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="empty or does not exist") as e:
        list(iter_documents(str(empty)))
    assert str(empty) in str(e.value) and "Fix:" in str(e.value)

    with pytest.raises(CorpusError, match="empty or does not exist"):
        list_corpus_files(str(tmp_path / "nope"))

    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(CorpusError, match=r"no readable corpus files \(found only: notes.txt\)"):
        make_shards(str(other), 10)


def test_malformed_row_names_file_row_and_streams_up_to_it(tmp_path: Path) -> None:
    path = tmp_path / "g" / "part.jsonl"
    path.parent.mkdir()
    path.write_text('{"text": "one"}\n\n{"text": "two"}\n{"text": broken\n{"text": "four"}\n')
    it = iter_documents(str(tmp_path))
    assert next(it).text == "one"
    assert next(it).text == "two"  # streaming: rows before the bad one arrive first
    with pytest.raises(CorpusError) as e:
        next(it)
    msg = str(e.value)
    assert "g/part.jsonl" in msg and "row 2 (line 4)" in msg and "not valid JSON" in msg


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"body": "x"}, "is missing"),
        ({"text": None}, "is of type NoneType, not a string"),
        ({"text": 3}, "is of type int"),
    ],
)
def test_bad_text_field_names_file_row_field(tmp_path: Path, row: dict, problem: str) -> None:
    _write_jsonl(tmp_path / "g" / "p.jsonl", [{"text": "fine"}, row])
    with pytest.raises(CorpusError) as e:
        list(iter_documents(str(tmp_path)))
    msg = str(e.value)
    assert "g/p.jsonl: row 1: field 'text' " + problem in msg
    assert "Fix:" in msg


def test_non_object_row_and_bad_parquet_and_bad_gzip(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "a" / "p.jsonl", [{"text": "ok"}])
    (tmp_path / "a" / "p.jsonl").write_text('{"text": "ok"}\n[1, 2]\n')
    with pytest.raises(CorpusError, match=r"a/p.jsonl: row 1 is a JSON list, not an object"):
        list(iter_documents(str(tmp_path / "a")))

    _write_parquet(tmp_path / "b" / "p.parquet", [{"body": "x"}])
    with pytest.raises(CorpusError, match=r"b/p.parquet: row 0: field 'text' is missing"):
        list(iter_documents(str(tmp_path / "b")))

    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "p.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a"}\n' * 100)[:40])
    with pytest.raises(CorpusError, match=r"c/p.jsonl.gz: cannot decompress"):
        list(iter_documents(str(tmp_path / "c")))


# --- shards --------------------------------------------------------------------------------------


def _shard_corpus(root: Path) -> None:
    _write_jsonl(root / "a" / "one.jsonl", _rows(7, "a"), blank_lines=True)
    _write_jsonl(root / "b" / "two.jsonl.gz", _rows(3, "b"), gz=True)
    _write_parquet(root / "c" / "three.parquet", _rows(5, "c"))


def test_shards_cover_every_row_once_and_read_back(tmp_path: Path) -> None:
    _shard_corpus(tmp_path)
    shards = make_shards(str(tmp_path), max_docs=3)
    assert [(s.file, s.start, s.stop) for s in shards] == [
        ("a/one.jsonl", 0, 3),
        ("a/one.jsonl", 3, 6),
        ("a/one.jsonl", 6, 7),
        ("b/two.jsonl.gz", 0, 3),
        ("c/three.parquet", 0, 3),
        ("c/three.parquet", 3, 5),
    ]
    assert len({s.digest for s in shards}) == len(shards)
    all_docs = list(iter_documents(str(tmp_path)))
    from_shards = [d for s in shards for d in read_shard(str(tmp_path), s)]
    assert from_shards == all_docs
    assert (
        file_digest(str(tmp_path), "a/one.jsonl")
        == hashlib.sha256((tmp_path / "a" / "one.jsonl").read_bytes()).hexdigest()
    )


def test_shard_digest_changes_only_with_its_file(tmp_path: Path) -> None:
    _shard_corpus(tmp_path)
    before = make_shards(str(tmp_path), max_docs=3)
    assert make_shards(str(tmp_path), max_docs=3) == before  # stable
    _write_jsonl(tmp_path / "b" / "two.jsonl.gz", _rows(3, "B"), gz=True)  # same rows count, new text
    after = make_shards(str(tmp_path), max_docs=3)
    changed = [a.file for a, b in zip(after, before, strict=True) if a.digest != b.digest]
    assert changed == ["b/two.jsonl.gz"]


def test_reading_a_shard_looks_up_its_file_without_listing_the_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One lookup per shard: on an object store, listing a corpus of N files for each of its shards
    costs N/1000 requests per shard. A corpus that is one file, and a file that is gone, still work."""
    _shard_corpus(tmp_path)
    shards = make_shards(str(tmp_path), max_docs=3)
    expected = list(iter_documents(str(tmp_path)))
    listed: list[str] = []
    real_list = Store.list

    def spy(self: Store, prefix: str = "", **kwargs: bool) -> list[str]:
        listed.append(self.uri(prefix))
        return real_list(self, prefix, **kwargs)

    monkeypatch.setattr(Store, "list", spy)
    assert [d for s in shards for d in read_shard(str(tmp_path), s)] == expected
    assert listed == []

    single = str(tmp_path / "a" / "one.jsonl")  # the corpus is this one file
    (first,) = [s for s in make_shards(single, max_docs=10)]
    assert [d.text for d in read_shard(single, first)] == [d.text for d in expected[:7]]

    outside = tmp_path.parent / f"{tmp_path.name}-outside.jsonl"  # a key out of the corpus folder
    outside.write_text(json.dumps({"id": "x", "text": "not in this corpus"}) + "\n")
    with pytest.raises(CorpusError, match="has no file"):
        list(read_shard(str(tmp_path), dataclasses.replace(shards[0], file=f"../{outside.name}")))

    (tmp_path / "b" / "two.jsonl.gz").unlink()
    with pytest.raises(CorpusError, match=r"has no file 'b/two\.jsonl\.gz'.*cut the shards again"):
        list(read_shard(str(tmp_path), shards[3]))


# --- S3 ------------------------------------------------------------------------------------------


def test_s3_corpus_reads_like_local(tmp_path: Path, s3_bucket: str) -> None:
    _shard_corpus(tmp_path)
    uri = Store(s3_bucket).put_dir(tmp_path, "corpus")
    assert list_corpus_files(uri) == list_corpus_files(str(tmp_path))
    assert list(iter_documents(uri)) == list(iter_documents(str(tmp_path)))
    s3_shards = make_shards(uri, max_docs=4)
    assert s3_shards == make_shards(str(tmp_path), max_docs=4)  # content-addressed: same digests
    assert list(read_shard(uri, s3_shards[1])) == list(read_shard(str(tmp_path), s3_shards[1]))

    with pytest.raises(CorpusError, match="empty or does not exist") as e:
        list(iter_documents(f"{s3_bucket}/missing-prefix"))
    assert f"{s3_bucket}/missing-prefix" in str(e.value)
