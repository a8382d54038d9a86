"""Lazy package exports: the config reads without torch, and every exported name is the real one."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

from automixer_core.lazy import lazy_exports
from tests.prefect_workers import REPO

LAZY_PACKAGES = ["automixer_core.evaluation", "automixer_core.influence", "automixer_core.proxy"]


def test_reading_a_config_imports_no_torch_or_transformers() -> None:
    """A fresh interpreter: ``automixer_core.config`` (what ``automixer trigger`` needs) stays light."""
    code = (
        "import sys, automixer_core.config\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _typed_imports(package: str) -> dict[str, str]:
    """name → module of the imports under ``if TYPE_CHECKING:`` in the package's ``__init__``."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    typed = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module is not None
                typed.update({a.name: imp.module for a in imp.names})
    return typed


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_exported_name_is_the_typed_imports_object(package: str) -> None:
    """What runs (the lazy map) gives, for every name of ``__all__``, the object mypy checked (the
    ``TYPE_CHECKING`` import): the same module, the same name."""
    typed = _typed_imports(package)
    pkg = importlib.import_module(package)
    assert sorted(typed) == sorted(pkg.__all__)
    assert set(pkg.__all__) <= set(dir(pkg))
    for name, module in typed.items():
        assert getattr(pkg, name) is getattr(importlib.import_module(module), name), (package, name)
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        getattr(pkg, "not_a_name")  # noqa: B009


def test_a_name_exported_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'x' is exported by both a\.b and a\.c"):
        lazy_exports("a", {"a.b": ["x"], "a.c": ["x"]})


def test_first_access_imports_the_module_and_caches_the_value() -> None:
    pkg = types.ModuleType("lazy_probe_pkg")
    sys.modules["lazy_probe_pkg"] = pkg
    try:
        getattr_, dir_ = lazy_exports("lazy_probe_pkg", {"json": ["dumps"]})
        assert "dumps" in dir_()
        import json

        assert getattr_("dumps") is json.dumps and vars(pkg)["dumps"] is json.dumps
    finally:
        del sys.modules["lazy_probe_pkg"]
