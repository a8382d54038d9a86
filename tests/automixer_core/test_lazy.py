"""Lazy package exports: the config reads without torch, and every exported name is the real one."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

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


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_exported_name_is_the_defining_modules_object(package: str) -> None:
    pkg = importlib.import_module(package)
    assert set(pkg.__all__) <= set(dir(pkg))
    for name in pkg.__all__:
        value = getattr(pkg, name)
        module = importlib.import_module(getattr(value, "__module__", None) or package)
        assert getattr(module, name, value) is value, (package, name)
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
