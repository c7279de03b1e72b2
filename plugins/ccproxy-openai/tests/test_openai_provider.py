"""The OpenAI provider: found through packaging metadata, capabilities per model family, headers, overrides."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
from pydantic import ValidationError

from ccproxy import ProviderConfig
from ccproxy_openai import OpenAIOptions, OpenAIProvider
from ccproxy_openai.capabilities import family_capabilities

OFFICIAL = "https://api.openai.com/v1"


def provider(base_url: str = OFFICIAL, **options: Any) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(base_url=base_url, api_key="sk-test-1234567", options=options))


def test_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="ccproxy") if ep.name == "openai"]
    assert len(found) == 1
    module = found[0].load()
    assert module.OpenAIProvider is OpenAIProvider
    assert found[0].dist is not None and found[0].dist.name == "ccproxy-openai"


@pytest.mark.parametrize("model", ["gpt-5", "gpt-5-mini", "gpt-5.1-codex", "o3", "o4-mini", "o1", "openai/gpt-5"])
def test_reasoning_families(model: str) -> None:
    caps = family_capabilities(model, official_openai=True)
    assert caps.max_tokens_param == "max_completion_tokens"
    assert caps.system_role == "developer"
    assert not caps.supports_temperature and not caps.supports_top_p
    assert caps.supports_reasoning


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "deepseek-chat", "llama-3.1-70b", "omni-model"])
def test_classic_families(model: str) -> None:
    caps = family_capabilities(model, official_openai=False)
    assert caps.max_tokens_param == "max_tokens"
    assert caps.system_role == "system"
    assert caps.supports_temperature and caps.supports_stop
    assert not caps.supports_reasoning


def test_stop_rules() -> None:
    assert not family_capabilities("o3", official_openai=True).supports_stop
    assert not family_capabilities("o4-mini", official_openai=True).supports_stop
    assert family_capabilities("o1", official_openai=True).supports_stop


def test_output_limits_and_documents() -> None:
    assert family_capabilities("gpt-4o-2024-08-06", official_openai=True).max_output_tokens == 16_384
    assert family_capabilities("gpt-4o-mini", official_openai=True).max_output_tokens == 16_384
    assert family_capabilities("some-local-model", official_openai=False).max_output_tokens is None
    assert family_capabilities("gpt-4o", official_openai=True).supports_documents
    assert not family_capabilities("gpt-4o", official_openai=False).supports_documents


def test_deepseek_reasoner_replays_reasoning_content() -> None:
    caps = family_capabilities("deepseek-reasoner", official_openai=False)
    assert caps.reasoning_replay == "reasoning_content" and caps.supports_reasoning


def test_top_k_only_off_openai() -> None:
    assert provider().capabilities("gpt-4o").supports_top_k is False
    assert provider("http://127.0.0.1:8000/v1").capabilities("qwen2.5").supports_top_k is True


def test_headers_and_url() -> None:
    p = provider(organization="org-1", headers={"X-Title": "ccproxy"})
    assert p.chat_completions_url() == "https://api.openai.com/v1/chat/completions"
    headers = p.headers()
    assert headers["authorization"] == "Bearer sk-test-1234567"
    assert headers["openai-organization"] == "org-1"
    assert headers["X-Title"] == "ccproxy"


def test_per_model_overrides() -> None:
    p = provider("http://127.0.0.1:8000/v1", models={"local": {"max_output_tokens": 4096, "supports_top_k": False}})
    caps = p.capabilities("local")
    assert caps.max_output_tokens == 4096 and caps.supports_top_k is False
    with pytest.raises(ValueError, match="unknown fields"):
        provider(models={"x": {"bogus": 1}})


def test_gpt_5_1_drops_effort_beside_tools_only() -> None:
    p = provider()
    tools = [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]
    with_tools = {"model": "gpt-5.1", "tools": tools, "reasoning_effort": "high"}
    assert "reasoning_effort" not in p.adjust_request(dict(with_tools), {})
    assert p.adjust_request({"model": "gpt-5.1", "reasoning_effort": "high"}, {})["reasoning_effort"] == "high"
    assert p.adjust_request({**with_tools, "model": "gpt-5"}, {})["reasoning_effort"] == "high"


def test_backend_attributes_and_options() -> None:
    assert OpenAIProvider.needs_key is True
    assert OpenAIProvider.key_env_var == "OPENAI_API_KEY"
    assert OpenAIProvider.default_base_url == OFFICIAL
    assert OpenAIProvider.options_model is OpenAIOptions
    assert OpenAIOptions.model_validate({"organization": "org-1"}).organization == "org-1"
    with pytest.raises(ValidationError):
        OpenAIOptions.model_validate({"organisation": "org-1"})


def test_table_headers_reach_the_upstream() -> None:
    config = ProviderConfig(base_url=OFFICIAL, api_key="sk-1", options={}, name="oa", headers={"X-Title": "t"})
    assert OpenAIProvider(config).headers()["X-Title"] == "t"
