"""The five legacy variables alone: backend `default` and default routes that behave exactly like today's Settings."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import build_state
from ccproxy.backends import build_backends
from ccproxy.config import CoreConfig, SettingsError, parse_config
from ccproxy.default_plugins.reasoning import BudgetEffortConfigurator
from ccproxy.interfaces import Provider, ProviderConfig
from ccproxy.legacy import LegacyValues, legacy_configured, legacy_values, plan_backends
from ccproxy.plugins import build_plugin_manager, collect
from ccproxy.routing import Route, Target
from ccproxy.settings import Settings, load_settings, upstream_auth, validate_settings
from ccproxy.upstream import ObservedUpstream, UpstreamWrapper

KEY = "sk-test-key-123456"
MODEL_NAMES = (
    "claude-opus-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-3-5-haiku-20241022",
    "CLAUDE-HAIKU-4-5",
    "claude-3-7-sonnet-latest",
    "gpt-4o",
    "qwen3:8b",
    "something-else",
)
LEGACY_CASES: list[tuple[dict[str, str], str]] = [
    ({"OPENAI_API_KEY": KEY}, ""),
    ({"OPENROUTER_API_KEY": "sk-or-abcdef"}, ""),
    ({"OPENAI_API_KEY": KEY, "OPENROUTER_API_KEY": "sk-or-abcdef"}, ""),
    ({"OPENROUTER_API_KEY": "sk-or-abcdef", "OPENAI_BASE_URL": "https://llm.example.com/v1"}, ""),
    (
        {"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1", "BIG_MODEL_NAME": "qwen3:32b", "SMALL_MODEL_NAME": "qwen3:8b"},
        "",
    ),
    ({"OPENAI_API_KEY": KEY}, '[routes]\n"claude-3-5-haiku*" = "gpt-4o-mini"\n"*OPUS*" = "o3"\n"qwen3*" = "local:x"\n'),
    (
        {"MY_KEY": "sk-secret-999999"},
        '[ccproxy]\nbig_model_name = "gpt-4.1"\n'
        '[plugins.openai]\napi_key = {"$env" = "MY_KEY"}\nbase_url = "https://gw.example.com/v1"\n'
        'organization = "org-9"\nheaders = {"X-Title" = "t"}\n'
        '[plugins.openai.models."gpt-4.1"]\nmax_output_tokens = 99\n',
    ),
]


def write_config(tmp_path: Path, toml: str) -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(toml, encoding="utf-8")
    return path


def todays_settings(tmp_path: Path, env: dict[str, str], toml: str) -> Settings:
    """Settings as load_settings builds them today. Today's check wants OPENAI_API_KEY even when the provider table
    has the key the app then uses; that case (now accepted) is loaded with a placeholder the table's key overrides."""
    path = write_config(tmp_path, toml)
    try:
        return load_settings(env, config_path=path, env_file=tmp_path / "none.env")
    except SettingsError:
        return load_settings({**env, "OPENAI_API_KEY": "unused"}, config_path=path, env_file=tmp_path / "none.env")


def todays_provider(settings: Settings) -> Provider:
    """The provider as the app built it from these settings before named backends existed (its code, kept here as
    the reference): the provider's `[plugins.<provider>]` table over OPENAI_BASE_URL and the key."""
    registry = collect(build_plugin_manager(settings), settings)
    options = settings.options_for(settings.provider)
    api_key = options.get("api_key", settings.api_key)
    base_url, basic_auth = upstream_auth(str(options.get("base_url", settings.base_url)), api_key, "OPENAI_BASE_URL")
    config = ProviderConfig(
        base_url=base_url,
        api_key=api_key,
        options=options,
        request_timeout=settings.request_timeout,
        connect_timeout=settings.connect_timeout,
        basic_auth=basic_auth,
    )
    return registry.providers[settings.provider](config)


def todays_route(settings: Settings, model: str) -> str:
    """Where the app sent a requested model before named backends (the former ModelRouter, kept here as the
    reference): the [routes] globs in order, case-insensitively, then names with `haiku` to SMALL, the rest to BIG."""
    lowered = model.lower()
    for pattern, upstream in settings.routes:
        assert isinstance(upstream, str)
        if fnmatchcase(lowered, pattern.lower()):
            return upstream
    return settings.small_model if "haiku" in lowered else settings.big_model


@pytest.mark.parametrize(("env", "toml"), LEGACY_CASES)
def test_legacy_only_matches_todays_app(tmp_path: Path, env: dict[str, str], toml: str) -> None:
    settings = todays_settings(tmp_path, env, toml)
    Sanic.test_mode = True
    today = todays_provider(settings)
    state = build_state(settings)
    assert list(state.backends) == ["default"]
    default = state.backends["default"]
    assert default.provider.name == today.name
    assert default.provider.chat_completions_url() == today.chat_completions_url()
    assert default.provider.headers() == today.headers()
    assert default.provider.config.api_key == today.config.api_key
    assert (default.config.request_timeout, default.config.connect_timeout) == (
        settings.request_timeout,
        settings.connect_timeout,
    )
    # One try, no breaker: today's behaviour on upstream failures.
    assert (default.config.retries, default.config.breaker_failures) == (0, 0)
    # No retry, breaker or limiter layer: at most the observers' tap (ObservedUpstream) around the transport.
    layers, stack = [], default.upstream
    while isinstance(stack, UpstreamWrapper):
        layers.append(type(stack))
        stack = stack.inner
    assert stack is default.transport
    assert set(layers) <= {ObservedUpstream}
    for name in MODEL_NAMES:
        upstream = todays_route(settings, name)
        assert state.router.resolve(name).targets == (Target("default", upstream),), name
        assert default.capabilities(upstream) == today.capabilities(upstream)


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"base_url": "https://llm.example.com/v1"},
        {"base_url": "ftp://x"},
        {"base_url": "http:///v1"},
        {"base_url": "https://openrouter.ai/api/v1", "api_key": None},
    ],
)
def test_legacy_errors_are_todays(values: dict[str, Any]) -> None:
    settings = Settings(**values)
    with pytest.raises(SettingsError) as today:
        validate_settings(settings)
    with pytest.raises(SettingsError) as now:
        plan_backends({}, legacy_values(settings, configured=False), request_timeout=1, connect_timeout=1)
    assert str(now.value) == str(today.value)


def test_unknown_legacy_provider_is_named_as_today() -> None:
    settings = Settings(api_key=KEY, provider="nope")
    plan = plan_backends({}, legacy_values(settings, configured=True), request_timeout=1, connect_timeout=1)
    with pytest.raises(SettingsError) as info:
        build_backends(plan.backends, {}, {"budget-effort": BudgetEffortConfigurator}, reasoning_options={}, env={})
    assert str(info.value) == "provider: 'nope' is not installed; installed providers: none"


def test_legacy_table_mistakes_name_the_plugin_table() -> None:
    settings = Settings(api_key=KEY, plugin_options={"openai": {"models": {"m": {"bogus": 1}}, "headers": 5}})
    with pytest.raises(SettingsError, match=r"^plugins.openai.headers: expected a table"):
        plan_backends({}, legacy_values(settings, configured=True), request_timeout=1, connect_timeout=1)


@pytest.mark.parametrize(
    "url", ["http://192.168.1.5:8000/v1", "http://10.0.0.2/v1", "http://gpu.local:1234/v1", "http://[::1]:8000/v1"]
)
def test_legacy_local_network_needs_no_key(url: str) -> None:
    """New: a LAN address is local like loopback (issue 7: never a key for a local server unless configured)."""
    legacy = legacy_values(Settings(base_url=url), configured=True)
    plan = plan_backends({}, legacy, request_timeout=1, connect_timeout=1)
    assert plan.backends["default"].api_key is None


def configured_backends(toml: str) -> dict[str, Any]:
    return dict(parse_config(tomllib.loads(toml), {}).backends)


LOCAL = configured_backends('[backends.local]\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n')


def legacy(configured: bool, **values: Any) -> LegacyValues:
    return legacy_values(Settings(**values), configured=configured)


def test_backends_without_legacy_variables_have_no_default() -> None:
    plan = plan_backends(LOCAL, legacy(False), request_timeout=600, connect_timeout=10)
    assert list(plan.backends) == ["local"] and plan.default_routes == ()


def test_backends_with_legacy_variables_get_default_first_and_default_routes() -> None:
    plan = plan_backends(
        LOCAL, legacy(True, api_key=KEY, small_model="s", big_model="b"), request_timeout=5, connect_timeout=2
    )
    assert list(plan.backends) == ["default", "local"]
    assert plan.backends["default"].api_key == KEY and plan.backends["default"].legacy
    assert plan.default_routes == (
        Route((Target("default", "s"),), "*haiku*"),
        Route((Target("default", "b"),), "*"),
    )
    assert (plan.backends["local"].request_timeout, plan.backends["local"].connect_timeout) == (5, 2)


def test_a_written_default_backend_wins_over_the_legacy_one() -> None:
    written = configured_backends('[backends.default]\nprovider = "openai"\nbase_url = "http://127.0.0.1:2/v1"\n')
    plan = plan_backends(written, legacy(True, big_model="b"), request_timeout=1, connect_timeout=1)
    assert plan.backends["default"].base_url == "http://127.0.0.1:2/v1" and not plan.backends["default"].legacy
    assert plan.default_routes[-1] == Route((Target("default", "b"),), "*")


def test_nothing_configured_is_todays_default_wanting_a_key() -> None:
    with pytest.raises(SettingsError, match=r"^OPENAI_API_KEY: not set"):
        plan_backends({}, legacy(False), request_timeout=1, connect_timeout=1)


def test_written_timeouts_are_kept() -> None:
    backends = configured_backends(
        '[backends.local]\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\nrequest_timeout = 30\n'
    )
    plan = plan_backends(backends, legacy(False), request_timeout=600, connect_timeout=10)
    assert (plan.backends["local"].request_timeout, plan.backends["local"].connect_timeout) == (30, 10)


@pytest.mark.parametrize(
    ("env", "core", "table", "configured"),
    [
        ({}, {}, {}, False),
        ({"OPENAI_API_KEY": "k"}, {}, {}, True),
        ({"OPENROUTER_API_KEY": "k"}, {}, {}, True),
        ({"OPENAI_BASE_URL": "http://x/v1"}, {}, {}, True),
        ({"BIG_MODEL_NAME": "b"}, {}, {}, True),
        ({"SMALL_MODEL_NAME": "s"}, {}, {}, True),
        ({"OPENAI_API_KEY": ""}, {}, {}, False),  # empty counts as unset, as in Settings
        ({"PORT": "1"}, {"port": 9000, "provider": "openai"}, {}, False),
        ({}, {"big_model_name": "b"}, {}, True),
        ({}, {"openai_base_url": "http://x/v1"}, {}, True),
        ({}, {}, {"organization": "o"}, True),
    ],
)
def test_legacy_configured(env: dict[str, str], core: dict[str, Any], table: dict[str, Any], configured: bool) -> None:
    assert legacy_configured(env, CoreConfig.model_validate(core), table) is configured
