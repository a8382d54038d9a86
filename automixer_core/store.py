"""The one module that reads and writes storage.

Any fsspec URI works as a root: a local path, ``file://``, ``s3://bucket/prefix`` (through s3fs,
loaded by fsspec on demand) or ``memory://``. Credentials come only from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL``);
nothing here ever writes them anywhere.

Writes are atomic: data goes to a temporary key beside the final one and is then moved into
place, so a reader never sees a partial object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from automixer_core.errors import StorageError

_TMP_MARK = ".amtmp-"


def storage_options_from_env(protocol: str) -> dict[str, Any]:
    """fsspec options for ``protocol`` taken from the environment (never from files or blocks)."""
    if protocol in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        # Bounded waits: an endpoint that is down or a bucket that is missing fails in seconds,
        # not after botocore's and s3fs's retries multiply (25-38 s measured with the defaults).
        opts: dict[str, Any] = {
            "config_kwargs": {
                "connect_timeout": float(os.environ.get("AUTOMIXER_S3_CONNECT_TIMEOUT", "3")),
                "read_timeout": float(os.environ.get("AUTOMIXER_S3_READ_TIMEOUT", "60")),
                "retries": {"total_max_attempts": 2, "mode": "standard"},
            },
        }
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
        return opts
    return {}


def split_uri(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and root path for ``uri`` (a local path or any fsspec URI)."""
    uri = str(uri)
    protocol = uri.split("://", 1)[0] if "://" in uri else "file"
    try:
        fs, path = fsspec.core.url_to_fs(uri, **storage_options_from_env(protocol))
    except (ImportError, ValueError) as exc:
        raise StorageError(
            f"Cannot open storage URI {uri!r}: {exc}",
            expected="a local path or a URI such as s3://bucket/prefix, file:///dir or memory://name",
            fix="check the scheme; for s3:// install s3fs (it is a dependency of automixer)",
        ) from exc
    return fs, path


def is_local(uri: str) -> bool:
    return isinstance(split_uri(uri)[0], LocalFileSystem)


def join(*parts: str) -> str:
    """Join URI parts with '/', keeping the scheme of the first."""
    head, *rest = [str(p) for p in parts]
    for part in rest:
        head = head.rstrip("/") + "/" + part.lstrip("/")
    return head


#: Object stores whose PUT is atomic: a reader sees the whole object or none (a multipart upload
#: appears when it completes; memory:// writes a whole value), so a write there is one request and
#: needs no temporary object. Any other filesystem (local, SFTP, ...) writes a temporary file and
#: renames it (DECISIONS 51).
ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})


class Store:
    """A root URI under which artifacts live at relative keys (``evals/abc/arc_easy.json``).

    Example::

        store = Store("s3://team-bucket/automixer")
        store.write_json("mixtures/latest.json", {...})   # atomic
        store.read_json("mixtures/latest.json")
    """

    def __init__(self, root: str | Path) -> None:
        self.root = str(root).rstrip("/") or "/"
        self.fs, self._root_path = split_uri(self.root)
        protocol = self.fs.protocol
        self._protocols = frozenset([protocol] if isinstance(protocol, str) else protocol)
        self._atomic_put = bool(self._protocols & ATOMIC_PUT_PROTOCOLS)
        if self.is_local:
            self._root_path = os.path.abspath(self._root_path)

    # --- paths -------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def path(self, key: str = "") -> str:
        """The filesystem path (no scheme) of ``key``."""
        key = key.strip("/")
        return posixpath.join(self._root_path, key) if key else self._root_path

    def uri(self, key: str = "") -> str:
        """The full URI of ``key`` (what a user can paste into another tool)."""
        key = key.strip("/")
        return join(self.root, key) if key else self.root

    def public_url(self, key: str, expires: int = 7 * 24 * 3600) -> str | None:
        """A URL of ``key`` for a browser: ``file://`` (absolute) for a local store; for an object
        store a presigned ``https://`` URL valid ``expires`` seconds (S3 allows at most 7 days),
        signed with the credentials of the environment; None where the filesystem cannot sign
        (``memory://``) or signing fails (no credentials)."""
        if self.is_local:
            return Path(self.path(key)).as_uri()
        try:
            return str(self.fs.sign(self.path(key), expiration=expires))
        except Exception:  # best effort: NotImplementedError, botocore's credential errors, ...
            return None

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # --- errors ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except StorageError:
            raise
        except FileNotFoundError as exc:
            raise StorageError(
                f"Cannot {action} {self.uri(key)!r}: it does not exist",
                fix="check the path or prefix, or run the step that produces it first",
            ) from exc
        except PermissionError as exc:
            raise StorageError(
                f"Cannot {action} {self.uri(key)!r}: permission denied ({exc})",
                fix="check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the file permissions)",
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"Cannot {action} {self.uri(key)!r}: {type(exc).__name__}: {exc}",
                fix="check that the bucket or folder exists and is reachable "
                "(for S3: AWS_ENDPOINT_URL and the credentials in the environment)",
            ) from exc
        except Exception as exc:  # botocore/aiohttp errors are not OSErrors
            name = type(exc).__name__
            if any(s in name for s in ("Endpoint", "Connect", "Client", "Credential", "Bucket")):
                raise StorageError(
                    f"Cannot {action} {self.uri(key)!r}: {name}: {exc}",
                    fix="check that the bucket exists and is reachable "
                    "(AWS_ENDPOINT_URL and the credentials in the environment)",
                ) from exc
            raise

    def check_writable(self) -> None:
        """Write and remove a probe object, so a missing bucket or read-only credentials fail here,
        before any work is done, instead of after it."""
        key = f".automixer-probe-{uuid.uuid4().hex}"
        try:
            self.write_bytes(key, b"")
            self.delete(key)
        except StorageError as exc:
            raise StorageError(
                f"The store {self.root!r} cannot be written: {exc.found}",
                fix="create the bucket or folder, or correct `store:` in the run config "
                "(for S3: AWS_ENDPOINT_URL and the credentials in the environment)",
            ) from exc

    # --- reading -----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        with self._guard("look up", key):
            return bool(self.fs.exists(self.path(key)))

    def read_bytes(self, key: str) -> bytes:
        with self._guard("read", key):
            data: bytes = self.fs.cat_file(self.path(key))
            return data

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def read_json(self, key: str) -> Any:
        raw = self.read_bytes(key)
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StorageError(
                f"{self.uri(key)!r} is not valid JSON ({exc})",
                fix="delete the object so that the step that writes it runs again",
            ) from exc

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[str]:
        """Keys (relative to the root) of the files under ``prefix``, sorted; [] if none."""
        base = self.path(prefix)
        with self._guard("list", prefix):
            if recursive:  # one listing: find gives [] for nothing there, [base] for a file
                try:
                    paths = self.fs.find(base)
                except FileNotFoundError:  # S3: the bucket itself does not exist
                    return []
            elif not self.fs.exists(base):
                return []
            elif self.fs.isfile(base):
                return [prefix.strip("/")]
            else:
                paths = self.fs.ls(base, detail=False)
        keys = []
        root = self._root_path.rstrip("/")
        for p in paths:
            p = str(p)
            if _TMP_MARK in posixpath.basename(p):
                continue
            if not recursive and self.fs.isdir(p):
                keys.append(posixpath.relpath(p, root) + "/")
                continue
            key = posixpath.relpath(p, root)
            keys.append("" if key == "." else key)  # the root itself is a file
        return sorted(keys)

    def info(self, key: str) -> dict[str, Any]:
        with self._guard("stat", key):
            info: dict[str, Any] = self.fs.info(self.path(key))
            return info

    def digest(self, key: str) -> str:
        """sha256 of the object's content (hex)."""
        h = hashlib.sha256()
        with self._guard("read", key), self.fs.open(self.path(key), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    def fingerprint(self, prefix: str) -> str:
        """A cheap digest of everything under ``prefix``: relative names, sizes and etags/mtimes.

        Changes when any file under the prefix is added, removed, resized or rewritten, and only then.
        """
        h = hashlib.sha256()
        base = self.path(prefix).rstrip("/")
        with self._guard("list", prefix):
            details = self.fs.find(base, detail=True)
        for p in sorted(details):
            if _TMP_MARK in posixpath.basename(p):
                continue
            d = details[p]
            stamp = (
                d.get("ETag") or d.get("etag") or d.get("mtime") or d.get("LastModified") or d.get("created")
            )
            h.update(f"{posixpath.relpath(p, base)}\0{d.get('size')}\0{stamp}\n".encode())
        return h.hexdigest()[:16]

    @contextlib.contextmanager
    def open(self, key: str, mode: str = "rb") -> Iterator[Any]:
        """Open for reading. (For writing use the atomic ``write_*`` methods.)"""
        if "r" not in mode:
            raise ValueError("Store.open is for reading; use write_bytes/write_json/put_file")
        with self._guard("read", key), self.fs.open(self.path(key), mode) as f:
            yield f

    # --- writing -----------------------------------------------------------------------------
    def _tmp_for(self, key: str) -> str:
        final = self.path(key)
        return posixpath.join(
            posixpath.dirname(final), f"{_TMP_MARK}{uuid.uuid4().hex}-{posixpath.basename(final)}"
        )

    def _commit(self, tmp: str, key: str) -> None:
        final = self.path(key)
        if self.is_local:
            os.replace(tmp, final)
        else:
            self.fs.mv(tmp, final)

    def write_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` to ``key`` atomically; returns the key's URI."""
        final = self.path(key)
        if self._atomic_put:
            with self._guard("write", key):
                self.fs.pipe_file(final, data)
            return self.uri(key)
        tmp = self._tmp_for(key)
        with self._guard("write", key):
            if self.is_local:
                os.makedirs(posixpath.dirname(final), exist_ok=True)
            self.fs.pipe_file(tmp, data)
            try:
                self._commit(tmp, key)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
        return self.uri(key)

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode("utf-8"))

    def write_json(self, key: str, obj: Any) -> str:
        return self.write_bytes(key, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())

    def put_file(self, local_path: str | Path, key: str) -> str:
        """Upload one local file to ``key`` atomically."""
        final = self.path(key)
        if self._atomic_put:
            with self._guard("write", key):
                if "memory" in self._protocols:  # its upload shows a growing file: one put instead
                    self.fs.pipe_file(final, Path(local_path).read_bytes())
                else:
                    self.fs.put_file(str(local_path), final)
            return self.uri(key)
        tmp = self._tmp_for(key)
        with self._guard("write", key):
            if self.is_local:
                os.makedirs(posixpath.dirname(final), exist_ok=True)
                shutil.copyfile(local_path, tmp)
            else:
                self.fs.put_file(str(local_path), tmp)
            try:
                self._commit(tmp, key)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
        return self.uri(key)

    def put_dir(self, local_dir: str | Path, key: str) -> str:
        """Upload a local folder under ``key``, file by file (each file atomic)."""
        local_dir = Path(local_dir)
        for f in sorted(local_dir.rglob("*")):
            if f.is_file():
                self.put_file(f, posixpath.join(key, f.relative_to(local_dir).as_posix()))
        return self.uri(key)

    def delete(self, key: str) -> None:
        with self._guard("delete", key):
            if self.fs.exists(self.path(key)):
                self.fs.rm(self.path(key), recursive=True)

    # --- local views -------------------------------------------------------------------------
    def local_dir(self, key: str, cache_root: str | Path | None = None) -> Path:
        """A local folder holding everything under ``key``.

        For a local store that is the folder itself; for a remote one the files are downloaded
        once into ``cache_root`` (default ``$AUTOMIXER_CACHE`` or ``~/.cache/automixer``) under
        the prefix's fingerprint, so a changed prefix is fetched again and an unchanged one is not.
        """
        if self.is_local:
            p = Path(self.path(key))
            if not p.exists():
                raise StorageError(f"{self.uri(key)!r} does not exist", fix="check the path")
            return p
        fp = self.fingerprint(key)
        cache = Path(cache_root or os.environ.get("AUTOMIXER_CACHE") or Path.home() / ".cache" / "automixer")
        target = cache / "downloads" / fp
        if (target / ".complete").exists():
            return target
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="dl-", dir=cache))
        for rel in self.list(key):
            sub = posixpath.relpath(rel, key.strip("/"))
            dest = tmp / sub
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self._guard("download", rel):
                self.fs.get_file(self.path(rel), str(dest))
        (tmp / ".complete").touch()
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
        return target
