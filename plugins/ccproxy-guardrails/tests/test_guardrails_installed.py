"""The plugin is found through real packaging metadata, and without rules it registers nothing."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import ccproxy_guardrails
from ccproxy.plugins import build_plugin_manager, collect
from ccproxy.settings import Settings


def settings(**guardrails: Any) -> Settings:
    return Settings(api_key="sk-test-0123456789", guardrail_options=guardrails)


def test_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="ccproxy") if ep.name == "guardrails"]
    assert len(found) == 1
    assert found[0].load() is ccproxy_guardrails
    assert found[0].dist is not None and found[0].dist.name == "ccproxy-guardrails"


def test_without_rules_nothing_is_registered_so_streams_keep_the_fast_path() -> None:
    configured = settings(allowed_models=["claude-*"])
    registry = collect(build_plugin_manager(configured), configured)
    assert registry.registered.get("guardrails", {}) == {}
    assert registry.stream_filters == []
    assert [guard.name for guard in registry.guardrails] == ["allowed_models"]  # the built-in still works


def test_rules_are_registered_in_order_by_their_names() -> None:
    configured = settings(
        order=["no-codenames", "limits"],
        redact={},
        limits={"max_tokens": 100},
        **{"no-codenames": {"kind": "block", "patterns": ["(?i)falcon"], "directions": ["request", "response"]}},
    )
    registry = collect(build_plugin_manager(configured), configured)
    assert registry.registered["guardrails"] == {
        "guardrails": ["no-codenames", "limits", "redact"],
        "stream_filters": ["no-codenames", "redact"],
    }
