"""Lazy package exports (PEP 562): a package names its public API without importing it.

``automixer_core.config`` needs only the settings classes of the influence, evaluation, proxy and
validation packages; importing those packages eagerly would pull torch and transformers (about 6 s
on the CI machine) into every command that only reads a config, such as ``automixer trigger``.
A package instead declares where each public name lives::

    if TYPE_CHECKING:  # what mypy reads
        from automixer_core.proxy.train import train_proxy
    if not TYPE_CHECKING:  # what runs (mypy would take a module __getattr__ as "any name is Any")
        __getattr__, __dir__ = lazy_exports(__name__, {"automixer_core.proxy.train": ["train_proxy"]})

and ``from automixer_core.proxy import train_proxy`` imports ``automixer_core.proxy.train`` at that
moment. ``tests/automixer_core/test_lazy.py`` holds the two lists equal.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package`` exporting ``{module: [names]}``.

    The first access to a name imports its module and stores the value on the package, so later
    accesses are plain attribute lookups.

    Raises:
        ValueError: a name is exported by two modules.
    """
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package}: {name!r} is exported by both {where[name]} and {module}")
            where[name] = module

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
