"""Strict function tools: on for OpenAI's own API, off for other OpenAI-compatible servers, settable per model."""

from __future__ import annotations

from ccproxy import ProviderConfig
from ccproxy_openai import OpenAIProvider

LOCAL = "http://127.0.0.1:8000/v1"


def provider(base_url: str, **options: object) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(base_url=base_url, api_key="sk-test-1234567", options=options))


def test_openai_itself_takes_strict_functions() -> None:
    official = provider("https://api.openai.com/v1")
    assert all(official.capabilities(model).supports_strict_tools for model in ("gpt-4o", "gpt-5", "o3"))


def test_other_servers_do_not_unless_configured() -> None:
    assert provider(LOCAL).capabilities("qwen3").supports_strict_tools is False
    configured = provider(LOCAL, models={"qwen3": {"supports_strict_tools": True}})
    assert configured.capabilities("qwen3").supports_strict_tools is True
    assert configured.capabilities("llama3").supports_strict_tools is False
