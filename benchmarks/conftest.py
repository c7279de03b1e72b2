"""The `core` fixture: the pure-Python core `[py]` and the compiled twins `[c]`, loaded side by side in one run."""

from __future__ import annotations

import pytest

from ccproxy.core._twins import REQUESTED, CompiledCoreError, Core, foreign_bindings, load_core
from tests.support.cores import FLAVOURS, implementation


@pytest.fixture(scope="session")
def pure_core() -> Core:
    return implementation("py")


@pytest.fixture(scope="session", params=FLAVOURS)
def core(request: pytest.FixtureRequest) -> Core:
    """Each benchmark runs once per implementation; a missing or stale compiled build is an error, not a skip."""
    return implementation(request.param)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say so when the figures are of a mixed core (one implementation calling the other's functions)."""
    for flavour in FLAVOURS:
        if flavour == "c" and not REQUESTED:
            continue
        try:
            mixed = foreign_bindings(load_core(flavour))
        except CompiledCoreError:
            continue
        if mixed:
            names = "; ".join(f"{module}: {', '.join(attrs)}" for module, attrs in mixed.items())
            terminalreporter.write_line(
                f"note: the [{flavour}] core calls the other implementation's code ({names}); "
                "see the import rule in ccproxy/core/_twins.py",
                yellow=True,
            )
