"""The plugin manager: defaults, entry points, overrides, disabled names, misspelled hooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from ccproxy import (
    Guardrail,
    GuardrailContext,
    ModelCapabilities,
    ProxyError,
    ReasoningConfigurator,
    hookimpl,
)
from ccproxy.app import build_state
from ccproxy.default_plugins.guardrails import ModelAllowList
from ccproxy.default_plugins.reasoning import BudgetEffortConfigurator
from ccproxy.interfaces import ReasoningRequest
from ccproxy.plugins import build_plugin_manager, collect, select_cache
from ccproxy.settings import Settings, SettingsError

REASONING_CAPS = ModelCapabilities(supports_reasoning=True)


def settings(**kwargs: Any) -> Settings:
    return Settings(api_key="sk-test", **kwargs)


def reasoning_of(configured: Settings, plugins: Sequence[tuple[str, object]] = ()) -> ReasoningConfigurator:
    """The reasoning configurator the app gives backend `default`."""
    return build_state(configured, plugins=plugins).backends["default"].reasoning


def test_defaults_are_registered_as_plugins() -> None:
    pm = build_plugin_manager(settings(), load_entry_points=False)
    registry = collect(pm, settings())
    assert "memory" in registry.cache_backends
    assert registry.reasoning_configurators["budget-effort"] is BudgetEffortConfigurator
    assert isinstance(reasoning_of(settings()), BudgetEffortConfigurator)
    assert registry.guardrails == []
    assert registry.providers == {}  # the core ships no provider


def test_entry_point_provider_is_discovered() -> None:
    pm = build_plugin_manager(settings())
    registry = collect(pm, settings())
    assert registry.providers["openai"].name == "openai"


def test_missing_provider_is_a_settings_error() -> None:
    registry = collect(build_plugin_manager(settings(), load_entry_points=False), settings())
    with pytest.raises(SettingsError, match="'openai' is not installed"):
        build_state(settings(disabled_plugins=("openai",)))
    with pytest.raises(SettingsError, match="'redis' is not installed"):
        select_cache(registry, "redis")


def test_misspelled_hook_fails_start_up() -> None:
    pm = build_plugin_manager(settings(), load_entry_points=False)

    class Typo:
        @hookimpl
        def ccproxy_register_provider(self, register: Any) -> None:  # missing "s"
            raise AssertionError("never called")

    pm.register(Typo(), name="typo")
    with pytest.raises(Exception, match="unknown hook"):
        pm.check_pending()


def test_misspelled_hook_from_entry_point_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Typo:
        @hookimpl
        def ccproxy_register_guardrail(self, register: Any) -> None:
            raise AssertionError("never called")

    def fake_load(self: Any, group: str, name: str | None = None) -> int:
        self.register(Typo(), name="typo-plugin")
        return 1

    monkeypatch.setattr("pluggy.PluginManager.load_setuptools_entrypoints", fake_load)
    with pytest.raises(SettingsError, match="typo-plugin"):
        build_plugin_manager(settings())


def test_plugin_overrides_default_reasoning() -> None:
    class Mine(ReasoningConfigurator):
        def configure(self, request: ReasoningRequest) -> dict[str, Any]:
            return {"custom": True}

    class Plugin:
        @hookimpl
        def ccproxy_register_reasoning_configurators(self, register: Any) -> None:
            register("mine", lambda options: Mine())

    chosen = settings(reasoning_options={"configurator": "mine"})
    assert isinstance(reasoning_of(chosen, [("mine", Plugin())]), Mine)


def test_disabled_plugins_are_blocked() -> None:
    blocked = settings(disabled_plugins=("ccproxy.memory_cache", "openai"))
    registry = collect(build_plugin_manager(blocked), blocked)
    assert "memory" not in registry.cache_backends
    assert "openai" not in registry.providers


def test_guardrail_plugin_is_chained() -> None:
    class Deny(Guardrail):
        name: ClassVar[str] = "deny"

        async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
            raise ProxyError("denied", status=403)

    class Plugin:
        @hookimpl
        def ccproxy_register_guardrails(self, register: Any, options: Mapping[str, Any]) -> None:
            register(Deny())

    pm = build_plugin_manager(settings(), load_entry_points=False)
    pm.register(Plugin(), name="deny")
    assert [g.name for g in collect(pm, settings()).guardrails] == ["deny"]


def test_allowed_models_guardrail_from_options() -> None:
    configured = settings(guardrail_options={"allowed_models": ["claude-*"]})
    registry = collect(build_plugin_manager(configured, load_entry_points=False), configured)
    assert [type(g) for g in registry.guardrails] == [ModelAllowList]


async def test_allowed_models_guardrail_refuses_with_403() -> None:
    guard = ModelAllowList(["claude-*"])
    context = GuardrailContext(request_id="req_1", headers={})
    await guard.check_request({"model": "claude-opus-4-8"}, context)
    with pytest.raises(ProxyError) as info:
        await guard.check_request({"model": "gpt-4o"}, context)
    assert info.value.status == 403 and info.value.error_type == "permission_error"


def reasoning(
    thinking: dict[str, Any] | None,
    effort: str | None = None,
    caps: ModelCapabilities = REASONING_CAPS,
    **options: Any,
) -> dict[str, Any]:
    request = ReasoningRequest(
        thinking=thinking, effort=effort, max_tokens=32000, upstream_model="gpt-5", capabilities=caps
    )
    return BudgetEffortConfigurator(options).configure(request)


@pytest.mark.parametrize(
    ("budget", "effort"), [(1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (31999, "high")]
)
def test_budget_buckets(budget: int, effort: str) -> None:
    assert reasoning({"type": "enabled", "budget_tokens": budget}) == {"reasoning_effort": effort}


def test_effort_and_adaptive() -> None:
    assert reasoning({"type": "adaptive"}) == {"reasoning_effort": "medium"}
    assert reasoning({"type": "adaptive"}, "high") == {"reasoning_effort": "high"}
    assert reasoning({"type": "adaptive"}, "max") == {"reasoning_effort": "high"}
    assert reasoning({"type": "adaptive"}, "max", effort_map={"max": "xhigh"}) == {"reasoning_effort": "xhigh"}
    assert reasoning({"type": "disabled"}, "high") == {}
    assert reasoning(None) == {}


def test_no_reasoning_fields_for_models_that_cannot_reason() -> None:
    assert reasoning({"type": "enabled", "budget_tokens": 30000}, caps=ModelCapabilities()) == {}


def test_options_reach_the_reasoning_hook() -> None:
    configured = settings(reasoning_options={"budget_bounds": [[100, "minimal"]], "above_bounds": "low"})
    configurator = reasoning_of(configured)
    request = ReasoningRequest(
        thinking={"type": "enabled", "budget_tokens": 50},
        effort=None,
        max_tokens=None,
        upstream_model="o3",
        capabilities=REASONING_CAPS,
    )
    assert configurator.configure(request) == {"reasoning_effort": "minimal"}
