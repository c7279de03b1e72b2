"""CACHE_BACKEND, REDIS_URL, RESPONSE_CACHE*, CACHE_WARMUP_* and the [cache] table: read, layered, and refused in one
line when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccproxy.plugins import build_cache, build_plugin_manager, collect
from ccproxy.settings import CACHE_ENV, UNSUPPORTED_SETTINGS, Settings, SettingsError, load_settings
from tests.test_cli import assert_one_line_error, run_ccproxy

BASE_ENV = {"OPENAI_API_KEY": "sk-test-key-123456"}


def load(tmp_path: Path, env: dict[str, str], toml: str = "") -> Settings:
    config = tmp_path / "p.toml"
    config.write_text(toml, encoding="utf-8")
    return load_settings({**BASE_ENV, **env}, env_file=tmp_path / "none.env", config_path=config)


def test_defaults_keep_the_response_cache_off(tmp_path: Path) -> None:
    settings = load(tmp_path, {})
    options = settings.cache_options
    assert settings.cache == "memory" and options.responses is False and options.response_ttl == 300.0
    assert options.url is None and options.warmup.enabled is False


def test_the_table_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    toml = (
        '[cache]\nbackend = "none"\nurl = "redis://table:6379/1"\nkey_prefix = "t:"\nttl = 60\n'
        "response_ttl = 30\n\n[cache.warmup]\nenabled = true\nmax_items = 7\n"
    )
    settings = load(tmp_path, {}, toml)
    assert settings.cache == "none" and settings.cache_options.url == "redis://table:6379/1"
    assert (settings.cache_options.key_prefix, settings.cache_options.ttl) == ("t:", 60.0)
    assert settings.cache_options.warmup.max_items == 7
    env = {"CACHE_BACKEND": "memory", "REDIS_URL": "redis://env:6379/2", "RESPONSE_CACHE": "on"}
    env |= {"RESPONSE_CACHE_TTL": "12.5", "CACHE_WARMUP_MAX_ITEMS": "9", "CACHE_WARMUP_ON_STARTUP": "false"}
    overridden = load(tmp_path, env, toml)
    options = overridden.cache_options
    assert overridden.cache == "memory" and options.url == "redis://env:6379/2" and options.responses is True
    assert (options.response_ttl, options.warmup.max_items, options.warmup.on_startup) == (12.5, 9, False)
    assert options.warmup.enabled is True and options.key_prefix == "t:"  # from the table, untouched


def test_cache_backend_and_ccproxy_cache_are_one_setting(tmp_path: Path) -> None:
    assert load(tmp_path, {"CCPROXY_CACHE": "none"}).cache == "none"
    assert load(tmp_path, {"CCPROXY_CACHE": "none", "CACHE_BACKEND": "memory"}).cache == "memory"
    with pytest.raises(SettingsError, match=r"^cache.backend: 'none' and \[ccproxy\] cache = 'memory' disagree"):
        load(tmp_path, {}, '[ccproxy]\ncache = "memory"\n[cache]\nbackend = "none"\n')


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ({"RESPONSE_CACHE": "sometimes"}, "", "RESPONSE_CACHE: expected on or off, got 'sometimes'"),
        ({"RESPONSE_CACHE_TTL": "0"}, "", "RESPONSE_CACHE_TTL: expected a number of seconds > 0, got 0.0"),
        ({"RESPONSE_CACHE_TTL": "soon"}, "", "RESPONSE_CACHE_TTL: expected a number of seconds, got 'soon'"),
        ({"CACHE_WARMUP_MAX_ITEMS": "many"}, "", "CACHE_WARMUP_MAX_ITEMS: expected a whole number, got 'many'"),
        ({"CACHE_WARMUP_POPULARITY_THRESHOLD": "0"}, "", "CACHE_WARMUP_POPULARITY_THRESHOLD: expected an integer >= 1"),
        ({"REDIS_URL": "localhost"}, "", "REDIS_URL: expected a URL such as redis://host:6379/0"),
        ({}, "[cache]\nresponses = 1\n", "cache.responses: expected true or false, got 1"),
        ({}, "[cache]\nresponse_tll = 3\n", "cache.response_tll: unknown setting"),
        ({}, "[cache.warmup]\nsave_interval_seconds = -5\n", "cache.warmup.save_interval_seconds: expected"),
        ({"CACHE_BACKEND": "none", "RESPONSE_CACHE": "on"}, "", "RESPONSE_CACHE: the response cache needs a cache"),
    ],
)
def test_bad_values_are_one_error_naming_the_setting(
    tmp_path: Path, env: dict[str, str], toml: str, message: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, env, toml)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_url_password_is_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, {}, '[cache]\nurl = "redis://user:hunter2-secret@ host"\n')
    assert "hunter2" not in str(info.value)


def test_honoured_cache_settings_are_not_reported_as_ignored(tmp_path: Path) -> None:
    assert not set(CACHE_ENV) & set(UNSUPPORTED_SETTINGS)
    assert "CACHE_WARMUP_PRELOAD_COMMON" in UNSUPPORTED_SETTINGS  # no list of common prompts ships: said so
    settings = load(tmp_path, {"CACHE_WARMUP_ENABLED": "true", "CACHE_WARMUP_FILE_PATH": "w.jsonl"})
    assert settings.ignored_settings == ()


def test_none_is_a_cache_backend_that_keeps_nothing(tmp_path: Path) -> None:
    settings = load(tmp_path, {"CACHE_BACKEND": "none"})
    cache = build_cache(collect(build_plugin_manager(settings), settings), settings)
    assert cache.name == "none"


async def test_the_memory_backend_takes_the_cache_ttl(tmp_path: Path) -> None:
    settings = load(tmp_path, {}, "[cache]\nttl = 42\n")
    cache = build_cache(collect(build_plugin_manager(settings), settings), settings)
    assert (await cache.stats())["default_ttl"] == 42.0


def test_a_bad_cache_setting_stops_the_server_with_one_line(tmp_path: Path) -> None:
    result = run_ccproxy(tmp_path, {"OPENAI_API_KEY": "sk-x", "RESPONSE_CACHE_TTL": "-3"})
    assert_one_line_error(result, "RESPONSE_CACHE_TTL")
