"""Backends: the key rule, base URL and key defaults, provider options, capability overrides, reasoning per backend."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from ccproxy import ModelCapabilities, Provider, ProviderConfig, ReasoningConfigurator, ReasoningRequest
from ccproxy.backends import (
    Backend,
    build_backends,
    is_local_host,
    key_required,
    public_url,
)
from ccproxy.config import BackendConfig, SettingsError, parse_config
from ccproxy_openai import OpenAIProvider


class KeyedProvider(Provider):
    """A public vendor: needs a key, knows its variable and URL, takes one option."""

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        region: str = "eu"
        secret_key: str | None = None

    name: ClassVar[str] = "keyed"
    key_env_var: ClassVar[str | None] = "KEYED_API_KEY"
    default_base_url: ClassVar[str | None] = "https://api.keyed.example/v1"
    options_model: ClassVar[type[BaseModel] | None] = Options
    calls: ClassVar[list[str]] = []

    def capabilities(self, model: str) -> ModelCapabilities:
        KeyedProvider.calls.append(model)
        return ModelCapabilities(max_output_tokens=8192, supports_top_k=True)


class LocalProvider(Provider):
    """A local server: no key, no default URL, no options, its own reasoning configurator."""

    name: ClassVar[str] = "localish"
    needs_key: ClassVar[bool] = False
    default_reasoning: ClassVar[str | None] = "think-tags"

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities()


class Effort(ReasoningConfigurator):
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    def configure(self, request: ReasoningRequest) -> dict[str, Any]:
        return {}


PROVIDERS: dict[str, type[Provider]] = {"keyed": KeyedProvider, "localish": LocalProvider, "openai": OpenAIProvider}
REASONING = {"budget-effort": Effort, "think-tags": Effort}


def configs(toml: str, env: Mapping[str, str] | None = None) -> dict[str, BackendConfig]:
    return dict(parse_config(tomllib.loads(toml), env or {}).backends)


def build(toml: str, env: Mapping[str, str] | None = None) -> dict[str, Backend]:
    return build_backends(
        configs(toml, env), PROVIDERS, REASONING, reasoning_options={"above_bounds": "high"}, env=env or {}
    )


def build_error(toml: str, env: Mapping[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as info:
        build(toml, env)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("gpu.localhost", True),
        ("10.1.2.3", True),
        ("172.16.5.4", True),
        ("172.31.255.255", True),
        ("192.168.1.10", True),
        ("169.254.1.1", True),
        ("100.101.102.103", True),  # RFC 6598 shared space: Tailscale
        ("fe80::1", True),
        ("fd00::7", True),
        ("studio.local", True),
        ("router.home.arpa", True),
        ("vllm.internal", True),
        ("box.lan", True),
        ("ollama", True),  # a single label: a compose service or a LAN name, never a public one
        ("172.32.0.1", False),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("api.openai.com", False),
        ("openrouter.ai", False),
        ("local.example.com", False),
        ("", False),
    ],
)
def test_local_hosts(host: str, local: bool) -> None:
    assert is_local_host(host) is local


@pytest.mark.parametrize(
    ("table", "needs_key", "url", "required"),
    [
        ({}, True, "https://api.openai.com/v1", True),
        ({}, True, "http://127.0.0.1:8000/v1", False),
        ({}, True, "http://192.168.1.5:8000/v1", False),
        ({}, True, "http://studio.local:1234/v1", False),
        ({}, False, "https://api.example.com/v1", False),
        ({}, True, "https://user:pw@api.example.com/v1", False),  # the URL brings its own credentials
        ({"api_key_required": True}, True, "http://127.0.0.1:8000/v1", True),
        ({"api_key_required": True}, False, "http://127.0.0.1:8000/v1", True),
        ({"api_key_required": False}, True, "https://api.openai.com/v1", False),
    ],
)
def test_key_rule(table: dict[str, Any], needs_key: bool, url: str, required: bool) -> None:
    config = BackendConfig.model_validate({"provider": "x", **table})
    assert key_required(config, needs_key=needs_key, base_url=url) is required


def test_public_vendor_without_a_key_is_named() -> None:
    assert build_error('[backends.vendor]\nprovider = "keyed"\n') == (
        "backends.vendor.api_key: not set; provider 'keyed' needs a key for https://api.keyed.example/v1 "
        '(set KEYED_API_KEY or write api_key = {"$env" = "NAME"})'
    )


def test_required_key_on_a_local_host_is_named() -> None:
    message = build_error(
        '[backends.box]\nprovider = "localish"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_required = true\n'
    )
    assert message == 'backends.box.api_key: not set; api_key_required = true (write api_key = {"$env" = "NAME"})'


def test_key_and_base_url_default_from_the_provider() -> None:
    vendor = build('[backends.vendor]\nprovider = "keyed"\n', {"KEYED_API_KEY": "sk-keyed-0123456789"})["vendor"]
    assert vendor.config.base_url == "https://api.keyed.example/v1"
    assert vendor.config.api_key == "sk-keyed-0123456789"
    assert vendor.provider.config.api_key == "sk-keyed-0123456789"
    assert vendor.provider.chat_completions_url() == "https://api.keyed.example/v1/chat/completions"
    assert vendor.config.table == "backends.vendor"  # the resolved copy still says where it came from


def test_table_key_wins_over_the_environment() -> None:
    toml = '[backends.vendor]\nprovider = "keyed"\napi_key = {"$env" = "MINE"}\n'
    vendor = build(toml, {"KEYED_API_KEY": "sk-env-0000000000", "MINE": "sk-mine-111111111"})["vendor"]
    assert vendor.config.api_key == "sk-mine-111111111"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/v1", "http://[::1]:8000/v1", "http://192.168.1.5/v1", "http://gpu.local/v1"]
)
def test_local_server_needs_no_key(url: str) -> None:
    backend = build(f'[backends.box]\nprovider = "keyed"\nbase_url = "{url}"\n')["box"]
    assert backend.config.api_key is None
    assert "authorization" not in backend.provider.headers()


def test_provider_without_key_needs_none_even_in_public() -> None:
    backend = build('[backends.box]\nprovider = "localish"\nbase_url = "https://llm.example.com/v1"\n')["box"]
    assert backend.config.api_key is None


def test_backends_only_config_needs_no_openai_key() -> None:
    backends = build('[backends.local]\nprovider = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\n', {})
    assert list(backends) == ["local"]
    assert backends["local"].provider.chat_completions_url() == "http://127.0.0.1:8000/v1/chat/completions"


def test_openai_backend_takes_its_key_and_url_from_the_provider() -> None:
    backend = build('[backends.oa]\nprovider = "openai"\n', {"OPENAI_API_KEY": "sk-oa-0123456789"})["oa"]
    assert backend.provider.chat_completions_url() == "https://api.openai.com/v1/chat/completions"
    assert backend.provider.headers()["authorization"] == "Bearer sk-oa-0123456789"
    assert build_error('[backends.oa]\nprovider = "openai"\n').startswith(
        "backends.oa.api_key: not set; provider 'openai' needs a key for https://api.openai.com/v1 (set OPENAI_API_KEY"
    )


def test_base_url_is_required_without_a_provider_default() -> None:
    assert build_error('[backends.box]\nprovider = "localish"\n') == (
        "backends.box.base_url: not set, and provider 'localish' has no default base URL"
    )


def test_unknown_provider_is_named_with_the_installed_ones() -> None:
    assert build_error('[backends.x]\nprovider = "nope"\n') == (
        "backends.x.provider: 'nope' is not installed; installed providers: keyed, localish, openai"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('regoin = "us"', "backends.v.regoin: unknown setting"),
        ("region = 5", "backends.v.region: expected a string, got 5"),
        ("secret_key = 12345678901", "backends.v.secret_key: expected a string"),  # never echoed
        ("retires = 3", "backends.v.retires: unknown setting"),  # a typo of a core key is caught by the provider
    ],
)
def test_provider_options_are_validated_by_the_provider(extra: str, message: str) -> None:
    text = build_error(f'[backends.v]\nprovider = "keyed"\napi_key = "k"\n{extra}\n')
    assert text == message


def test_provider_options_reach_the_provider() -> None:
    vendor = build('[backends.v]\nprovider = "keyed"\napi_key = "k"\nregion = "us"\n')["v"]
    assert vendor.provider.config.options == {"region": "us", "secret_key": None}


def test_provider_without_options_model_refuses_unknown_keys() -> None:
    assert build_error('[backends.b]\nprovider = "localish"\nbase_url = "http://127.0.0.1:1/v1"\nthink = 1\n') == (
        "backends.b.think: unknown setting; provider 'localish' takes no options"
    )


def test_openai_options() -> None:
    backend = build(
        '[backends.oa]\nprovider = "openai"\napi_key = "sk-1"\norganization = "org-1"\nheaders = {"X-Title" = "t"}\n'
    )["oa"]
    headers = backend.provider.headers()
    assert headers["openai-organization"] == "org-1" and headers["X-Title"] == "t"
    assert build_error('[backends.oa]\nprovider = "openai"\napi_key = "sk-1"\norganisation = "o"\n') == (
        "backends.oa.organisation: unknown setting"
    )


def test_provider_config_carries_the_backend() -> None:
    vendor = build(
        '[backends.v]\nprovider = "keyed"\napi_key = "k"\nheaders = {"X-Title" = "ccproxy"}\n'
        "connect_timeout = 3\nrequest_timeout = 30\n"
    )["v"]
    config = vendor.provider.config
    assert (config.name, config.headers, config.connect_timeout, config.request_timeout) == (
        "v",
        {"X-Title": "ccproxy"},
        3.0,
        30.0,
    )
    assert vendor.provider.headers()["X-Title"] == "ccproxy"
    assert vendor.provider.headers()["authorization"] == "Bearer k"


def test_capability_overrides_are_laid_over_the_provider_answer_once() -> None:
    KeyedProvider.calls.clear()
    vendor = build(
        '[backends.v]\nprovider = "keyed"\napi_key = "k"\n'
        '[backends.v.models."big/model:1"]\nmax_output_tokens = 32000\nsupports_reasoning = true\n'
    )["v"]
    caps = vendor.capabilities("big/model:1")
    assert (caps.max_output_tokens, caps.supports_reasoning, caps.supports_top_k) == (32000, True, True)
    assert vendor.capabilities("big/model:1") is caps
    assert vendor.capabilities("other").max_output_tokens == 8192
    assert KeyedProvider.calls == ["big/model:1", "other"]


def test_reasoning_configurator_per_backend() -> None:
    backends = build(
        '[backends.a]\nprovider = "keyed"\napi_key = "k"\n'
        '[backends.b]\nprovider = "keyed"\napi_key = "k"\nreasoning = "think-tags"\n'
        '[backends.c]\nprovider = "localish"\nbase_url = "http://127.0.0.1:1/v1"\n'
    )
    a, b, c = backends["a"].reasoning, backends["b"].reasoning, backends["c"].reasoning
    assert isinstance(a, Effort) and a.options == {"above_bounds": "high"}
    assert b is c  # c takes its provider's default_reasoning; one instance per name
    assert a is not b
    assert build_error('[backends.a]\nprovider = "keyed"\napi_key = "k"\nreasoning = "nope"\n') == (
        "backends.a.reasoning: configurator 'nope' is not registered; registered: budget-effort, think-tags"
    )


class Picky(LocalProvider):
    name: ClassVar[str] = "picky"

    def __init__(self, config: ProviderConfig) -> None:
        raise ValueError("base_url must end in /v1")


def test_provider_refusing_its_config_is_named() -> None:
    with pytest.raises(SettingsError, match=r"^backends.p: base_url must end in /v1$"):
        build_backends(
            configs('[backends.p]\nprovider = "picky"\nbase_url = "http://127.0.0.1/"\n'),
            {"picky": Picky},
            REASONING,
            reasoning_options={},
            env={},
        )


def test_no_secret_in_repr_and_public_url() -> None:
    backends = build(
        '[backends.v]\nprovider = "keyed"\napi_key = "sk-v-0123456789"\nheaders = {"X-Api-Key" = "hk-0123456789"}\n'
        '[backends.w]\nprovider = "keyed"\nbase_url = "https://u:pw-0123456789@h.example/v1"\n'
    )
    backend = backends["v"]
    assert "pw-0" not in repr(backends["w"]) and "pw-0" not in repr(backends["w"].config)
    assert "sk-v" not in repr(backend) and "sk-v" not in repr(backend.config) and "hk-0" not in repr(backend.config)
    assert public_url("https://u:p@h.example:8443/v1?key=s#f") == "https://h.example:8443/v1"
    assert public_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
