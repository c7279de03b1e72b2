"""docs/plugins.md documents every hook in ccproxy/hookspecs.py, with the signature the spec has."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ccproxy import hookspecs

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")


def hookspec_signatures() -> dict[str, tuple[str, ...]]:
    """Hook name -> parameter names, for every function the hookspec marker marked."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: tuple(inspect.signature(function).parameters)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def documented_signatures(hook: str, doc: str) -> list[tuple[str, ...]]:
    """Parameter names of every `hook(...)` written in `doc`: in tables, headings and example code (`self`,
    annotations and defaults removed)."""
    found = []
    for arguments in re.findall(rf"\b{hook}\(([^)]*)\)", doc):
        names = [part.split(":")[0].split("=")[0].strip() for part in arguments.split(",")]
        found.append(tuple(name for name in names if name and name != "self"))
    return found


SPECS = hookspec_signatures()


def test_the_hookspecs_are_found() -> None:
    assert {"ccproxy_register_providers", "ccproxy_startup", "ccproxy_register_routes"} <= set(SPECS)


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_every_hook_is_documented_with_its_signature(hook: str) -> None:
    documented = documented_signatures(hook, DOC)
    assert documented, f"{hook} is not documented in docs/plugins.md"
    wanted = f"{hook}({', '.join(SPECS[hook])})"
    assert wanted in DOC, f"docs/plugins.md never writes {wanted}"
    assert all(found == SPECS[hook] for found in documented), f"{hook} documented as {documented}, spec {SPECS[hook]}"


def test_every_hook_has_its_own_section() -> None:
    for hook, parameters in SPECS.items():
        assert f"## `{hook}({', '.join(parameters)})`" in DOC, hook


def test_a_wrong_or_missing_signature_is_caught() -> None:
    # The checks above must be able to fail: a doc with a stale signature or no mention does not pass them.
    stale = "`ccproxy_register_guardrails(register)`"
    assert documented_signatures("ccproxy_register_guardrails", stale) == [("register",)]
    assert documented_signatures("ccproxy_register_guardrails", stale) != [SPECS["ccproxy_register_guardrails"]]
    assert documented_signatures("ccproxy_startup", "nothing here") == []
    typed = "def ccproxy_startup(self, state: AppState) -> None:"
    assert documented_signatures("ccproxy_startup", typed) == [("state",)]


def test_the_removed_firstresult_reasoning_hook_is_gone() -> None:
    assert "ccproxy_reasoning_configurator" not in SPECS
    assert "ccproxy_reasoning_configurator(" not in DOC
