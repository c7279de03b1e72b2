"""The guard: with extensions on, the compiled twins are what runs; off, the pure modules do. Never silently."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import ccproxy.core
from ccproxy.core import COMPILED_MODULES, cython_requested, implementation_name

CORE_DIR = Path(ccproxy.core.__file__).parent


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_selected_implementation_is_loaded(name: str) -> None:
    module = importlib.import_module(f"ccproxy.core.{name}")
    assert sys.modules[f"ccproxy.core.{name}"] is module
    if cython_requested():
        assert implementation_name() == "cython", "compiled core requested but not loaded: run ./run-tests.sh"
        assert module.__name__ == f"ccproxy.core._{name}_c"
        assert module.__file__ is not None and module.__file__.endswith(".so")
    else:
        assert implementation_name() == "python"
        assert module.__file__ == str(CORE_DIR / f"{name}.py")


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_compiled_twin_is_built_and_current(name: str) -> None:
    try:
        module = importlib.import_module(f"ccproxy.core._{name}_c")
    except ImportError:
        # Only acceptable when extensions are switched off on purpose.
        assert not cython_requested(), f"ccproxy.core._{name}_c is not built: run ./run-tests.sh"
        return
    assert module.__file__ is not None
    built = Path(module.__file__).stat().st_mtime
    source = (CORE_DIR / f"{name}.py").stat().st_mtime
    assert built >= source, f"ccproxy/core/{name}.py changed after its twin was built: run ./run-tests.sh"


def test_switch_parsing() -> None:
    assert cython_requested({}) is True
    assert cython_requested({"CCPROXY_ENABLE_CYTHON": "false"}) is False
    assert cython_requested({"CCPROXY_ENABLE_CYTHON": "0"}) is False
    assert cython_requested({"CCPROXY_ENABLE_CYTHON": "true"}) is True


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_no_mixed_core(name: str) -> None:
    """Every core function a selected module uses comes from the selected implementation of its module."""
    module = importlib.import_module(f"ccproxy.core.{name}")
    pure_names = {f"ccproxy.core.{other}" for other in COMPILED_MODULES}
    twin_names = {f"ccproxy.core._{other}_c" for other in COMPILED_MODULES}
    wrong = pure_names if cython_requested() else twin_names
    leaked = [attr for attr, value in vars(module).items() if getattr(value, "__module__", None) in wrong]
    assert not leaked, f"{module.__name__} uses the other core's {leaked}"
