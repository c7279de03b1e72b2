"""Settings the original CCProxy documented are reported when ignored; every honoured setting is checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccproxy.settings import ENV_FIELDS, UNSUPPORTED_SETTINGS, Settings, SettingsError, load_settings

BASE_ENV = {"OPENAI_API_KEY": "sk-test-key-123456"}
# Settings the original CCProxy's config.py and .env.example document, one per area; none is honoured yet.
ORIGINAL_SETTINGS = (
    "LOG_PRETTY_CONSOLE",
    "ERROR_TRACKING_FILE",
    "CACHE_WARMUP_PRELOAD_COMMON",
    "STREAM_DEDUPE_ENABLED",
    "THREAD_POOL_MAX_WORKERS",
    "THREAD_POOL_AUTO_SCALE",
    "RATE_LIMIT_PER_MINUTE",
    "CLIENT_RATE_LIMIT_RPM",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
    "PROVIDER_MAX_RETRIES",
    "CACHE_TOKEN_COUNTS_TTL_S",
    "HTTP_CONNECT_TIMEOUT",
    "CORS_ALLOW_ORIGINS",
    "TRACING_ENABLED",
)


def load(tmp_path: Path, env: dict[str, str], dotenv: str = "", toml: str = "") -> Settings:
    env_file = tmp_path / "x.env"
    env_file.write_text(dotenv, encoding="utf-8")
    config = tmp_path / "p.toml"
    config.write_text(toml, encoding="utf-8")
    return load_settings(env, env_file=env_file, config_path=config)


def ignored_names(tmp_path: Path, env: dict[str, str], dotenv: str = "") -> list[str]:
    settings = load(tmp_path, env, dotenv)
    return [name for name, _ in settings.ignored_settings]


def test_original_settings_are_all_in_the_table() -> None:
    assert set(ORIGINAL_SETTINGS) <= set(UNSUPPORTED_SETTINGS)


def test_no_honoured_setting_is_listed_as_unsupported() -> None:
    # A later issue that implements a setting must take it out of the table.
    honoured = {*ENV_FIELDS, "OPENAI_API_KEY", "OPENROUTER_API_KEY", "CCPROXY_CONFIG", "CCPROXY_ENV_FILE"}
    assert not honoured & set(UNSUPPORTED_SETTINGS)
    assert all(hint.strip() for hint in UNSUPPORTED_SETTINGS.values())


@pytest.mark.parametrize("name", ORIGINAL_SETTINGS)
def test_each_unsupported_setting_in_the_environment_is_reported(tmp_path: Path, name: str) -> None:
    settings = load(tmp_path, {**BASE_ENV, name: "1"})
    assert settings.ignored_settings == ((name, UNSUPPORTED_SETTINGS[name]),)


def test_unsupported_settings_in_dotenv_are_reported_in_table_order(tmp_path: Path) -> None:
    dotenv = "THREAD_POOL_AUTO_SCALE=true\nLOG_PRETTY_CONSOLE=true\nCACHE_WARMUP_PRELOAD_COMMON=true\n"
    assert ignored_names(tmp_path, BASE_ENV, dotenv) == [
        "LOG_PRETTY_CONSOLE",
        "CACHE_WARMUP_PRELOAD_COMMON",
        "THREAD_POOL_AUTO_SCALE",
    ]


def test_empty_or_absent_settings_are_not_reported(tmp_path: Path) -> None:
    assert ignored_names(tmp_path, {**BASE_ENV, "LOG_PRETTY_CONSOLE": ""}) == []


def test_hints_name_the_equivalent_where_there_is_one() -> None:
    assert "CONNECT_TIMEOUT" in UNSUPPORTED_SETTINGS["HTTP_CONNECT_TIMEOUT"]
    assert "ALLOWED_ORIGINS" in UNSUPPORTED_SETTINGS["CORS_ALLOW_ORIGINS"]
    assert "not supported yet" in UNSUPPORTED_SETTINGS["ERROR_TRACKING_FILE"]
    assert "RESPONSE_CACHE=on" in UNSUPPORTED_SETTINGS["STREAM_DEDUPE_ENABLED"]


def test_cython_switch_in_dotenv_is_reported_because_it_is_read_at_import(tmp_path: Path) -> None:
    assert ignored_names(tmp_path, BASE_ENV, "CCPROXY_ENABLE_CYTHON=false\n") == ["CCPROXY_ENABLE_CYTHON"]
    env = {**BASE_ENV, "CCPROXY_ENABLE_CYTHON": "false"}
    assert ignored_names(tmp_path, env, "CCPROXY_ENABLE_CYTHON=false\n") == []
    assert ignored_names(tmp_path, {**BASE_ENV, "CCPROXY_ENABLE_CYTHON": ""}) == []


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "8_0"}, "PORT"),
        ({"PORT": "1e3"}, "PORT"),
        ({"PORT": "0"}, "PORT"),
        ({"WEB_CONCURRENCY": "1.5"}, "WEB_CONCURRENCY"),
        ({"WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY"),
        ({"REQUEST_TIMEOUT": "nan"}, "REQUEST_TIMEOUT"),
        ({"REQUEST_TIMEOUT": "inf"}, "REQUEST_TIMEOUT"),
        ({"REQUEST_TIMEOUT": "-1"}, "REQUEST_TIMEOUT"),
        ({"REQUEST_TIMEOUT": "ten"}, "REQUEST_TIMEOUT"),
        ({"CONNECT_TIMEOUT": "0"}, "CONNECT_TIMEOUT"),
        ({"CONNECT_TIMEOUT": "nan"}, "CONNECT_TIMEOUT"),
        ({"HOST": "not a host"}, "HOST"),
        ({"HOST": "[::1]"}, "HOST"),
        ({"HOST": "localhost:8080"}, "HOST"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
        ({"BIG_MODEL_NAME": "  "}, "BIG_MODEL_NAME"),
        ({"OPENAI_BASE_URL": "api.openai.com/v1"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "https://"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "http://host:99999/v1"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "http://host:port/v1"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "http://host/v1?api-version=1"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "http://host /v1"}, "OPENAI_BASE_URL"),
        ({"OPENAI_API_KEY": "sk-test-key-123456\n"}, "OPENAI_API_KEY"),
        ({"OPENAI_API_KEY": '"sk-test key"'}, "OPENAI_API_KEY"),
        ({"ALLOWED_HOSTS": "proxy.example:8080"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": "http://proxy.example"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_ORIGINS": "*"}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": "null"}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": "localhost:3000"}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": "http://localhost:3000/app"}, "ALLOWED_ORIGINS"),
        ({"CCPROXY_ENABLE_CYTHON": "flase"}, "CCPROXY_ENABLE_CYTHON"),
    ],
)
def test_invalid_environment_value_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, {**BASE_ENV, **env})
    message = str(info.value)
    assert message.startswith(named + ":"), message
    assert "\n" not in message
    assert "test-key" not in message


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[ccproxy]\nport = true\n", "ccproxy.port"),
        ("[ccproxy]\nweb_concurrency = 2.5\n", "ccproxy.web_concurrency"),
        ("[ccproxy]\nrequest_timeout = true\n", "ccproxy.request_timeout"),
        ("[ccproxy]\nbig_model_name = 5\n", "ccproxy.big_model_name"),
        ("[ccproxy]\nallowed_hosts = 5\n", "ccproxy.allowed_hosts"),
        ("[ccproxy]\nallowed_origins = [1]\n", "ccproxy.allowed_origins"),
    ],
)
def test_invalid_config_value_names_the_key(tmp_path: Path, toml: str, named: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, BASE_ENV, toml=toml)
    assert str(info.value).startswith(named + ":")


def test_valid_values_are_normalised(tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        "PORT": " 8080 ",
        "REQUEST_TIMEOUT": "1e3",
        "HOST": "::",
        "ALLOWED_HOSTS": " Proxy.Example , ccproxy_service,[::1],",
        "ALLOWED_ORIGINS": "HTTP://LocalHost:3000/, chrome-extension://abcdef",
        "CCPROXY_ENABLE_CYTHON": "Off",
    }
    settings = load(tmp_path, env)
    assert settings.port == 8080
    assert settings.request_timeout == 1000.0
    assert settings.host == "::"
    assert settings.allowed_hosts == ("proxy.example", "ccproxy_service", "[::1]")
    assert settings.allowed_origins == ("http://localhost:3000", "chrome-extension://abcdef")


def test_config_file_takes_lists(tmp_path: Path) -> None:
    toml = '[ccproxy]\nallowed_hosts = ["a.example", "B.example"]\nallowed_origins = "http://x.example"\n'
    settings = load(tmp_path, BASE_ENV, toml=toml)
    assert settings.allowed_hosts == ("a.example", "b.example")
    assert settings.allowed_origins == ("http://x.example",)
