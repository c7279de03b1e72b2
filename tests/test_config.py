"""plugins.toml as pydantic models: every kind of mistake is one line naming its table and key; $env secrets."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ccproxy.config import BackendConfig, CoreConfig, FileConfig, SettingsError, dotted, parse_config

REPO = Path(__file__).resolve().parents[1]


def parse(text: str, env: dict[str, str] | None = None) -> FileConfig:
    return parse_config(tomllib.loads(text), env or {}, source="plugins.toml")


def error_of(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(SettingsError) as info:
        parse(text, env)
    message = str(info.value)
    assert "\n" not in message
    return message


LOCAL = '[backends.local]\nprovider = "openai"\n'


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (LOCAL + 'rpm = "ten"', "backends.local.rpm: expected an integer >= 0, got 'ten'"),
        (LOCAL + "retries = -1", "backends.local.retries: expected an integer >= 0, got -1"),
        (LOCAL + "tpm = true", "backends.local.tpm: expected an integer >= 0, got True"),
        (LOCAL + "request_timeout = 0", "backends.local.request_timeout: expected a number of seconds > 0, got 0"),
        (LOCAL + 'limit_wait = "soon"', "backends.local.limit_wait: expected a number of seconds >= 0, got 'soon'"),
        (LOCAL + 'api_key_required = "yes"', "backends.local.api_key_required: expected true or false, got 'yes'"),
        (LOCAL + 'base_url = "ftp://x"', "backends.local.base_url: expected an http(s) URL, got 'ftp://x'"),
        (LOCAL + 'base_url = "http://h:port/v1"', "backends.local.base_url: expected an http(s) URL"),
        (LOCAL + 'reasoning = ""', "backends.local.reasoning: expected a non-empty string, got ''"),
        (LOCAL + "headers = 3", "backends.local.headers: expected a table of header names to strings"),
        ("[backends.local]\nrpm = 1", "backends.local.provider: required"),
        ('[backends."my box"]\nprovider = "openai"', 'backends."my box": a backend name may only contain'),
        ('[backends."a:b"]\nprovider = "openai"', 'backends."a:b": a backend name may only contain'),
        ("backends = 5", "backends: expected a table, got 5"),
        (
            LOCAL + '[backends.local.models."qwen3:8b"]\nmax_output_tokenz = 1',
            'backends.local.models."qwen3:8b".max_output_tokenz: unknown capability in plugins.toml; known: ',
        ),
        (
            LOCAL + '[backends.local.models."qwen3:8b"]\nmax_output_tokens = "lots"',
            "backends.local.models.\"qwen3:8b\".max_output_tokens: expected an integer, got 'lots'",
        ),
        (
            LOCAL + "[backends.local.models.m]\nsystem_role = 'user'",
            "backends.local.models.m.system_role: expected 'system' or 'developer', got 'user'",
        ),
        ('[routes]\n"claude-*" = []', 'routes."claude-*": expected "backend:model", "model" or a non-empty list'),
        ('[routes]\n"claude-*" = ["a", 3]', 'routes."claude-*": expected "backend:model"'),
        ('[routes]\n"claude-*" = 7', 'routes."claude-*": expected "backend:model", "model" or a non-empty list'),
        ("[ccproxy]\nbogus = 1", "ccproxy.bogus: unknown setting in plugins.toml"),
        ("[ccproxy]\nbig_model = 'x'", "ccproxy.big_model: unknown setting"),  # the file spelling is big_model_name
        ('[ccproxy]\nport = "eleven"', "ccproxy.port: expected an integer, got 'eleven'"),
        ('[ccproxy]\ndisabled_plugins = "x"', "ccproxy.disabled_plugins: expected a list of plugin names, got 'x'"),
        ("[plugins]\nredis = 1", "plugins.redis: expected a table, got 1"),
        ("[route]\nx = 'y'", "route: unknown table in plugins.toml; the tables ccproxy reads are ccproxy, backends"),
        ("[backend.local]\nprovider = 'openai'", "backend: unknown table"),
        ('[backends.x]\napi_key = {"$env" = "NOPE"}', "backends.x.api_key: environment variable 'NOPE' is not set"),
    ],
)
def test_each_kind_of_mistake_names_table_and_key(toml: str, message: str) -> None:
    assert error_of(toml).startswith(message)


def test_several_mistakes_report_the_first_and_count_the_rest() -> None:
    assert error_of(LOCAL + "retries = -1\nrpm = -1\ntpm = -1") == (
        "backends.local.retries: expected an integer >= 0, got -1 (and 2 more)"
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (LOCAL + "api_key = 12345678901", "backends.local.api_key: expected a string"),
        (LOCAL + "headers = {Authorization = 12345678901}", "backends.local.headers: expected a table of header"),
        (
            LOCAL + 'x_api_key = {"$env" = "X"}\nrpm = "12345678901"',
            "backends.local.rpm: expected an integer >= 0, got",
        ),
    ],
)
def test_secret_values_are_never_echoed(toml: str, message: str) -> None:
    text = error_of(toml, {"X": "12345678901"})
    assert text.startswith(message)
    # The control (rpm) echoes its value; the secret-named keys do not.
    assert ("12345678901" in text) is message.endswith("got")


def test_long_values_are_cut_short() -> None:
    message = error_of(LOCAL + f'rpm = "{"9" * 200}"')
    assert len(message) < 140 and message.endswith("...")


def test_secrets_are_resolved_before_validation_and_kept_out_of_repr() -> None:
    config = parse(
        LOCAL + 'api_key = {"$env" = "LOCAL_KEY"}\nheaders = {"X-Token" = {"$env" = "TOKEN"}}\n'
        'organization = {"$env" = "ORG"}\n'
        '[plugins.redis]\nurl = {"$env" = "REDIS_URL"}\n',
        {"LOCAL_KEY": "sk-local-0123456789", "TOKEN": "tok-0123456789", "ORG": "org-1", "REDIS_URL": "redis://x"},
    )
    local = config.backends["local"]
    assert local.api_key == "sk-local-0123456789"
    assert local.headers == {"X-Token": "tok-0123456789"}
    assert local.options == {"organization": "org-1"}
    assert config.plugins["redis"]["url"] == "redis://x"
    assert "sk-local" not in repr(config) and "tok-0123" not in repr(config)


def test_backend_defaults_and_provider_options() -> None:
    config = parse(LOCAL + 'api = "responses"\nthink_tags = true\nprovider_preferences = {order = ["a"]}\n')
    local = config.backends["local"]
    assert (local.retries, local.breaker_failures, local.breaker_cooldown) == (2, 5, 60.0)
    assert (local.rpm, local.tpm, local.limit_wait) == (0, 0, 10.0)
    assert local.base_url is None and local.api_key is None and local.api_key_required is None
    assert local.connect_timeout is None and local.request_timeout is None and local.reasoning is None
    assert local.options == {"api": "responses", "think_tags": True, "provider_preferences": {"order": ["a"]}}
    assert local.table == "backends.local" and local.where("rpm") == "backends.local.rpm"
    assert not local.legacy


def test_typed_values_and_file_order() -> None:
    config = parse(
        '[backends.zeta]\nprovider = "openai"\nconnect_timeout = 3\nbreaker_cooldown = 0.5\n'
        '[backends."my.box"]\nprovider = "openai"\n'
        '[backends.alpha]\nprovider = "openai"\n[backends.alpha.models."gpt-5"]\nmax_output_tokens = 32000\n'
        '[routes]\n"z*" = "alpha:m"\n"a*" = ["zeta:m", "gpt-5"]\n'
    )
    assert list(config.backends) == ["zeta", "my.box", "alpha"]
    assert config.backends["zeta"].connect_timeout == 3.0
    assert config.backends["my.box"].table == 'backends."my.box"'
    assert config.backends["alpha"].models == {"gpt-5": {"max_output_tokens": 32000}}
    # A single target stays a string: the shape Settings.routes has always had.
    assert list(config.routes.items()) == [("z*", "alpha:m"), ("a*", ("zeta:m", "gpt-5"))]


def test_core_table_uses_the_environment_names_in_lower_case() -> None:
    core = parse(
        '[ccproxy]\nbig_model_name = "b"\nsmall_model_name = "s"\nopenai_base_url = "http://x/v1"\n'
        'web_concurrency = 2\nport = "9000"\nccproxy_provider = "openrouter"\ndisabled_plugins = ["a"]\n'
    ).ccproxy
    assert core.settings_values() == {
        "big_model": "b",
        "small_model": "s",
        "base_url": "http://x/v1",
        "workers": 2,
        "port": 9000,
        "provider": "openrouter",
        "disabled_plugins": ("a",),
    }
    assert CoreConfig().settings_values() == {}


def test_the_repository_example_parses() -> None:
    with (REPO / "plugins.toml").open("rb") as handle:
        config = parse_config(tomllib.load(handle), {}, source="plugins.toml")
    assert config.ccproxy.provider == "openai"


def test_replaced_keeps_where_the_backend_came_from() -> None:
    local = parse(LOCAL).backends["local"]
    copy = local.replaced(base_url="http://127.0.0.1:1/v1", api_key="k")
    assert copy.table == "backends.local" and copy.base_url == "http://127.0.0.1:1/v1"
    assert local.base_url is None  # the original is untouched
    assert isinstance(copy, BackendConfig)


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        (("backends", "local", "rpm"), "backends.local.rpm"),
        (("backends", "my.box"), 'backends."my.box"'),
        (("routes", "claude-*haiku*"), 'routes."claude-*haiku*"'),
        (("ccproxy", "disabled_plugins", 0), "ccproxy.disabled_plugins[0]"),
    ],
)
def test_dotted_writes_keys_the_way_toml_does(parts: tuple[str | int, ...], text: str) -> None:
    assert dotted(parts) == text
