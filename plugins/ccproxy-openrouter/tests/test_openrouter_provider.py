"""The OpenRouter provider: found through packaging metadata, capabilities per family, headers, routing options."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sanic import Sanic

from ccproxy import ProviderConfig, ReasoningRequest, SettingsError
from ccproxy.app import build_state
from ccproxy.settings import load_settings
from ccproxy_openrouter import (
    DEFAULT_BASE_URL,
    OpenRouterOptions,
    OpenRouterProvider,
    OpenRouterReasoning,
    openrouter_capabilities,
)

KEY = "sk-or-v1-" + "a" * 40


def provider(**options: Any) -> OpenRouterProvider:
    validated = OpenRouterOptions.model_validate(options).model_dump()
    return OpenRouterProvider(ProviderConfig(base_url=DEFAULT_BASE_URL, api_key=KEY, options=validated))


def test_the_plugin_is_installed_through_its_entry_point() -> None:
    found = [ep for ep in entry_points(group="ccproxy") if ep.name == "openrouter"]
    assert len(found) == 1
    module = found[0].load()
    assert module.OpenRouterProvider is OpenRouterProvider
    assert found[0].dist is not None and found[0].dist.name == "ccproxy-openrouter"
    assert OpenRouterProvider.name == "openrouter"
    assert OpenRouterProvider.key_env_var == "OPENROUTER_API_KEY"
    assert OpenRouterProvider.default_base_url == "https://openrouter.ai/api/v1"
    assert OpenRouterProvider.default_reasoning == "openrouter"


@pytest.mark.parametrize(
    "model",
    [
        "anthropic/claude-sonnet-4.5",
        "anthropic/claude-opus-4.1",
        "anthropic/claude-haiku-4.5",
        "anthropic/claude-3.7-sonnet:thinking",
    ],
)
def test_anthropic_models_replay_signed_reasoning_and_forward_cache_control(model: str) -> None:
    caps = openrouter_capabilities(model)
    assert caps.reasoning_replay == "reasoning_details"
    assert caps.forward_cache_control and caps.supports_documents and caps.supports_reasoning
    assert caps.max_tokens_param == "max_tokens" and caps.supports_temperature
    assert not caps.reasoning_mandatory


def test_older_anthropic_models_forward_cache_control_but_cannot_reason() -> None:
    caps = openrouter_capabilities("anthropic/claude-3.5-haiku")
    assert caps.forward_cache_control and not caps.supports_reasoning


@pytest.mark.parametrize("model", ["openai/gpt-5", "openai/gpt-5.1-codex", "openai/o4-mini"])
def test_openai_reasoning_models(model: str) -> None:
    caps = openrouter_capabilities(model)
    assert caps.max_tokens_param == "max_completion_tokens"
    assert not caps.supports_temperature and not caps.supports_top_p and not caps.supports_stop
    assert caps.supports_reasoning and caps.reasoning_mandatory
    assert not caps.forward_cache_control and caps.reasoning_replay == "drop"


def test_openai_chat_models() -> None:
    chat = openrouter_capabilities("openai/gpt-5-chat")
    assert chat.supports_temperature and not chat.supports_reasoning and not chat.reasoning_mandatory
    old = openrouter_capabilities("openai/gpt-4o")
    assert old.max_tokens_param == "max_completion_tokens" and old.supports_stop and not old.supports_reasoning


def test_other_families() -> None:
    kimi = openrouter_capabilities("moonshotai/kimi-k2-thinking")
    assert kimi.supports_reasoning and not kimi.reasoning_mandatory and kimi.supports_top_k
    assert openrouter_capabilities("deepseek/deepseek-r1-0528:free").reasoning_mandatory
    assert not openrouter_capabilities("meta-llama/llama-3.3-70b-instruct").supports_reasoning


def test_attribution_headers_are_on_by_default() -> None:
    headers = provider().headers()
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["HTTP-Referer"].startswith("https://") and headers["X-Title"] == "ccproxy"


def test_attribution_can_be_changed_or_switched_off() -> None:
    headers = provider(referer="https://example.com/app", title="Team proxy").headers()
    assert headers["HTTP-Referer"] == "https://example.com/app" and headers["X-Title"] == "Team proxy"
    headers = provider(attribution=False).headers()
    assert "HTTP-Referer" not in headers and "X-Title" not in headers


def test_the_tables_own_headers_win_over_attribution() -> None:
    config = ProviderConfig(
        base_url=DEFAULT_BASE_URL,
        api_key=KEY,
        options=OpenRouterOptions().model_dump(),
        headers={"x-title": "From headers"},
    )
    headers = OpenRouterProvider(config).headers()
    assert headers["x-title"] == "From headers" and "X-Title" not in headers


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"referer": "example.com"}, "http"),
        ({"title": "two\nlines"}, "printable ASCII"),
        ({"provider_preferences": {"sort": "cheapest"}}, "sort"),
        ({"provider_preferences": {"data_collection": "maybe"}}, "data_collection"),
        ({"provider_preferences": {"quantizations": ["fp7"]}}, "quantizations"),
        ({"provider_preferences": {"max_price": {"prompt": -1}}}, "prompt"),
        ({"provider_preferences": {"orderr": ["Anthropic"]}}, "orderr"),
        ({"organization": "x"}, "organization"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        OpenRouterOptions.model_validate(options)


def test_provider_preferences_become_the_provider_object_and_usage_is_asked_for() -> None:
    preferences = {
        "order": ["Anthropic", "Amazon Bedrock"],
        "allow_fallbacks": False,
        "require_parameters": True,
        "data_collection": "deny",
        "only": ["Anthropic"],
        "ignore": ["Google Vertex"],
        "quantizations": ["fp8"],
        "sort": "throughput",
        "max_price": {"prompt": 3, "completion": 15},
    }
    body = provider(provider_preferences=preferences).adjust_request({"model": "m", "messages": []}, {})
    assert body["provider"] == {**preferences, "max_price": {"prompt": 3.0, "completion": 15.0}}
    assert body["usage"] == {"include": True}


def test_no_preferences_send_no_provider_object() -> None:
    body = provider().adjust_request({"model": "m", "messages": []}, {})
    assert "provider" not in body


def test_the_legacy_key_alone_serves_backend_default_through_this_provider_when_chosen(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text('[ccproxy]\nprovider = "openrouter"\n', encoding="utf-8")
    settings = load_settings({"OPENROUTER_API_KEY": KEY}, config_path=config, env_file=tmp_path / "none.env")
    Sanic.test_mode = True
    backend = build_state(settings).backends["default"]
    assert isinstance(backend.provider, OpenRouterProvider) and isinstance(backend.reasoning, OpenRouterReasoning)
    assert backend.provider.config.base_url == DEFAULT_BASE_URL and backend.provider.config.api_key == KEY
    assert backend.capabilities("anthropic/claude-sonnet-4.5").forward_cache_control


def test_a_backend_table_is_checked_and_takes_the_key_from_its_variable(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text('[backends.or]\nprovider = "openrouter"\n[routes]\n"*" = "or:openai/gpt-5"\n', encoding="utf-8")
    settings = load_settings({"OPENROUTER_API_KEY": KEY}, config_path=config, env_file=tmp_path / "none.env")
    Sanic.test_mode = True
    assert build_state(settings).backends["or"].provider.config.api_key == KEY
    config.write_text('[backends.or]\nprovider = "openrouter"\nprovider_preferences = {sort = "cheap"}\n')
    with pytest.raises(SettingsError, match=r"backends\.or\.provider_preferences\.sort"):
        build_state(load_settings({"OPENROUTER_API_KEY": KEY}, config_path=config, env_file=tmp_path / "none.env"))


def test_per_model_overrides_in_the_backend_table_still_apply(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text(
        '[backends.or]\nprovider = "openrouter"\n'
        '[backends.or.models."z-ai/glm-5"]\nreasoning_mandatory = true\nreasoning_replay = "reasoning_details"\n'
        '[routes]\n"*" = "or:z-ai/glm-5"\n',
        encoding="utf-8",
    )
    settings = load_settings({"OPENROUTER_API_KEY": KEY}, config_path=config, env_file=tmp_path / "none.env")
    Sanic.test_mode = True
    backend = build_state(settings).backends["or"]
    capabilities = backend.capabilities("z-ai/glm-5")
    assert capabilities.reasoning_mandatory and capabilities.reasoning_replay == "reasoning_details"
    request = ReasoningRequest({"type": "disabled"}, None, 1000, "z-ai/glm-5", capabilities)
    assert backend.reasoning.configure(request) == {"reasoning": {"effort": "low", "exclude": True}}
