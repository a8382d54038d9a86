"""A published mixture folder and its completeness (``mixtures/<id>/``).

A publish writes ``membership.parquet``, ``exports/*``, ``report.html`` and ``mixture.json``, then
``manifest.json`` **last**: every file's size and sha256. A folder without a manifest is an
interrupted publish (a kill, a full disk): no reader takes it for a mixture, and the next remix of
the same inputs completes it. :func:`read_published_mixture` is the one way in for readers
(export, validate, proxy training): it refuses an incomplete folder, and a file whose bytes no
longer match the manifest, with a message naming the folder and the fix.
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import Any

from automixer_core.errors import StorageError
from automixer_core.mixture import Mixture
from automixer_core.store import Store

MANIFEST = "manifest.json"
MIXTURE = "mixture.json"


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name


def write_manifest(store: Store, folder: str, names: list[str]) -> str:
    """Write ``<folder>/manifest.json`` listing ``names`` (keys relative to ``folder``) with their
    sizes and sha256, and return its key. Call it after every listed file is written."""
    files: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        data = store.read_bytes(_join(folder, name))
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    key = _join(folder, MANIFEST)
    store.write_json(key, {"complete": True, "files": files})
    return key


def is_complete(store: Store, folder: str) -> bool:
    """Whether ``folder`` holds a finished publish (its manifest exists)."""
    return store.exists(_join(folder, MANIFEST))


def mixture_folder(uri: str) -> str:
    """The folder of a published mixture given as ``.../mixtures/<id>/mixture.json`` or as the folder."""
    uri = uri.rstrip("/")
    return uri.rpartition("/")[0] if uri.endswith(".json") else uri


def read_published_mixture(uri: str, *, verify: bool = True) -> Mixture:
    """The mixture at ``uri`` (a published ``.../mixtures/<id>/mixture.json``, or its folder),
    only if its publish completed.

    Raises:
        StorageError: the folder has no manifest (an interrupted publish), or a file differs from it.
        ConfigError: the document is not a valid mixture.
    """
    uri = uri.rstrip("/")
    folder_uri = mixture_folder(uri)
    name = posixpath.basename(uri) if uri.endswith(".json") else MIXTURE
    store = Store(folder_uri or ".")
    no_document = StorageError(
        f"No mixture document at {store.uri(name)!r}",
        expected="a mixtures/<id>/mixture.json written by `automixer remix`",
        fix="check the URI (mixtures/latest.json names the newest mixture)",
    )
    if store.exists(MANIFEST):  # a complete publish: one more look, for the document itself
        if not store.exists(name):
            raise no_document
    else:  # nothing there, or an interrupted publish: only now look at what it wrote
        started = any(store.exists(k) for k in (name, MIXTURE, "membership.parquet", "report.html"))
        if not started:
            raise no_document
        raise StorageError(
            f"Mixture folder {folder_uri!r} has no {MANIFEST}: its publish did not finish (it was interrupted), "
            "so its files may be partial",
            expected=f"a complete publish, whose {MANIFEST} is written last",
            fix="run the remix again with the same config: it completes the publish; or use mixtures/latest.json",
        )
    if verify:
        manifest = store.read_json(MANIFEST)
        data = store.read_bytes(name)
        entry = manifest.get("files", {}).get(name)
        if entry is None or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise StorageError(
                f"{store.uri(name)!r} does not match its {MANIFEST} (edited or corrupted after publishing)",
                fix="run the remix again into a fresh store, or restore the file",
            )
    return Mixture.from_json(store.read_text(name))
