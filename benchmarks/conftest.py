"""The `core` fixture: the pure-Python core `[py]` and the compiled twins `[c]`, loaded side by side in one run."""

from __future__ import annotations

import pytest
from bench_cores import Core, load_compiled_core, load_pure_core, pure_bindings

import ccproxy.core


@pytest.fixture(scope="session")
def pure_core() -> Core:
    return load_pure_core()


@pytest.fixture(scope="session", params=["py", "c"])
def core(request: pytest.FixtureRequest, pure_core: Core) -> Core:
    """Each benchmark runs once per implementation; a missing compiled build is an error, not a skip."""
    if request.param == "py":
        return pure_core
    if not ccproxy.core.cython_requested():
        pytest.skip("CCPROXY_ENABLE_CYTHON=false: the compiled core is switched off on purpose")
    try:
        return load_compiled_core()
    except ImportError as exc:
        pytest.fail(
            f"the compiled core is not built ({exc}). Build it with `.venv/bin/pip install -e .` (or "
            "`.venv/bin/python setup.py build_ext --inplace`), or set CCPROXY_ENABLE_CYTHON=false to "
            "benchmark the pure-Python core alone.",
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say so when the `[c]` figures are of a mixed core (compiled modules calling pure helpers)."""
    if not ccproxy.core.cython_requested():
        return
    try:
        mixed = pure_bindings(load_compiled_core())
    except ImportError:
        return
    if mixed:
        names = "; ".join(f"{module}: {', '.join(attrs)}" for module, attrs in mixed.items())
        terminalreporter.write_line(
            f"note: the [c] core calls pure-Python helpers of other core modules ({names}); "
            "ccproxy/core/__init__.py should alias each twin before importing the next one",
            yellow=True,
        )
