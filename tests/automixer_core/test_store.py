"""Store: the same behaviour on the local disk, memory:// and a real S3 HTTP endpoint."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from automixer_core.errors import StorageError
from automixer_core.store import Store


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return Store(tmp_path / "root")
    if request.param == "memory":
        return Store(f"memory://am-{uuid.uuid4().hex[:8]}")
    bucket = request.getfixturevalue("s3_bucket")
    return Store(f"{bucket}/prefix")


def test_roundtrip_json_bytes_text(store: Store) -> None:
    store.write_json("a/b/c.json", {"x": 1, "y": [1, 2]})
    store.write_bytes("a/raw.bin", b"\x00\x01\x02")
    store.write_text("t.txt", "héllo")
    assert store.read_json("a/b/c.json") == {"x": 1, "y": [1, 2]}
    assert store.read_bytes("a/raw.bin") == b"\x00\x01\x02"
    assert store.read_text("t.txt") == "héllo"
    assert store.exists("a/b/c.json")
    assert not store.exists("a/b/missing.json")
    assert store.list("a") == ["a/b/c.json", "a/raw.bin"]
    assert store.list("nothing-here") == []
    assert store.list("a/b/c.json") == ["a/b/c.json"]  # a file lists as itself
    assert Store(store.uri("a/b/c.json")).list() == [""]  # and a store rooted at a file, as ""


def test_digest_is_sha256_of_content(store: Store) -> None:
    data = os.urandom(3 << 20)  # spans several read blocks
    store.write_bytes("blob", data)
    assert store.digest("blob") == hashlib.sha256(data).hexdigest()


def test_overwrite_is_atomic_and_leaves_no_temporaries(store: Store) -> None:
    store.write_json("k.json", {"v": 1})
    store.write_json("k.json", {"v": 2})
    assert store.read_json("k.json") == {"v": 2}
    assert store.list("") == ["k.json"]  # no temporary keys left behind or listed


def test_an_object_store_write_is_one_put(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3's PUT is atomic: a write is one request (no temporary object copied and deleted), and a
    recursive listing is one listing. Counted at the S3 client, against the real endpoint."""
    import s3fs

    calls: list[str] = []
    real = s3fs.S3FileSystem._call_s3

    async def counting(self: s3fs.S3FileSystem, method: str, *args: object, **kwargs: object) -> object:
        calls.append(str(method))
        return await real(self, method, *args, **kwargs)

    store = Store(f"{s3_bucket}/prefix")
    store.write_text("a/seed.txt", "x")  # the client and the bucket are known from here on
    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counting)
    store.write_json("a/b.json", {"x": 1})
    (tmp_path / "f.bin").write_bytes(b"123")
    store.put_file(tmp_path / "f.bin", "a/f.bin")
    assert calls == ["put_object", "put_object"]
    calls.clear()
    assert store.list("a") == ["a/b.json", "a/f.bin", "a/seed.txt"]
    assert calls == ["list_objects_v2"]
    assert store.read_json("a/b.json") == {"x": 1} and store.read_bytes("a/f.bin") == b"123"


def test_fingerprint_changes_when_and_only_when_files_change(store: Store) -> None:
    store.write_bytes("ckpt/config.json", b"{}")
    store.write_bytes("ckpt/model.safetensors", b"weights")
    fp1 = store.fingerprint("ckpt")
    assert store.fingerprint("ckpt") == fp1
    store.write_bytes("other/file", b"unrelated")
    assert store.fingerprint("ckpt") == fp1
    store.write_bytes("ckpt/model.safetensors", b"weights-changed")
    assert store.fingerprint("ckpt") != fp1


def test_put_dir_and_local_dir_roundtrip(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    store.put_dir(src, "up")
    assert store.list("up") == ["up/a.txt", "up/sub/b.txt"]
    local = store.local_dir("up") if store.is_local else store.local_dir("up", cache_root=tmp_path / "cache")
    assert (local / "a.txt").read_text() == "A"
    assert (local / "sub" / "b.txt").read_text() == "B"


def test_missing_key_is_a_storage_error_naming_the_uri(store: Store) -> None:
    with pytest.raises(StorageError) as err:
        store.read_json("no/such.json")
    assert store.uri("no/such.json") in str(err.value)
    assert "Fix:" in str(err.value)


def test_corrupt_json_says_what_to_do(store: Store) -> None:
    store.write_bytes("bad.json", b"{not json")
    with pytest.raises(StorageError, match="not valid JSON"):
        store.read_json("bad.json")


def test_unreachable_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    store = Store(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x")
    with pytest.raises(StorageError) as err:
        store.write_json("k.json", {"a": 1})
    assert "no-such-bucket" in str(err.value)
    assert store.list() == [] and not store.exists("k.json")  # nothing there to read: empty, as before


def test_check_writable_leaves_nothing_and_names_a_missing_bucket(store: Store, s3_endpoint: str) -> None:
    store.write_text("kept.txt", "x")
    store.check_writable()
    assert store.list() == ["kept.txt"]  # the probe is gone
    missing = Store(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/am")
    with pytest.raises(
        StorageError, match=r"The store 's3://no-such-bucket-\w+/am' cannot be written"
    ) as err:
        missing.check_writable()
    assert "create the bucket" in str(err.value)


def test_credentials_never_appear_in_uris_or_errors(s3_endpoint: str) -> None:
    store = Store(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}")
    with pytest.raises(StorageError) as err:
        store.read_bytes("k")
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in repr(store)
    assert "secret" not in str(err.value).lower()


def test_bad_scheme_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="Cannot open storage URI"):
        Store("nosuchscheme://x/y")
