"""Settings: sources in order, $env secrets, one-line errors naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccproxy.settings import SettingsError, load_settings, parse_env_file

BASE_ENV = {"OPENAI_API_KEY": "sk-test-key-123456"}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(BASE_ENV, env_file=tmp_path / "none.env", config_path=write(tmp_path / "p.toml", ""))
    assert settings.base_url == "https://api.openai.com/v1"
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 11434, "INFO")
    assert settings.big_model == "gpt-5" and settings.small_model == "gpt-5-mini"
    assert settings.provider == "openai" and settings.cache == "memory"


def test_env_overrides_dotenv_which_overrides_toml(tmp_path: Path) -> None:
    toml = write(tmp_path / "p.toml", '[ccproxy]\nbig_model_name = "from-toml"\nport = 9000\nlog_level = "DEBUG"\n')
    dotenv = write(tmp_path / ".env", "export BIG_MODEL_NAME='from-dotenv'\nPORT=9100 # comment\n")
    env = {**BASE_ENV, "PORT": "9200"}
    settings = load_settings(env, config_path=toml, env_file=dotenv)
    assert settings.big_model == "from-dotenv"
    assert settings.port == 9200
    assert settings.log_level == "DEBUG"


def test_explicit_arguments_win(tmp_path: Path) -> None:
    settings = load_settings({**BASE_ENV, "PORT": "9200"}, env_file=tmp_path / "x", port=9300)
    assert settings.port == 9300


def test_openrouter_key_selects_openrouter(tmp_path: Path) -> None:
    settings = load_settings({"OPENROUTER_API_KEY": "sk-or-abc"}, env_file=tmp_path / "x")
    assert settings.api_key == "sk-or-abc"
    assert settings.base_url == "https://openrouter.ai/api/v1"


def test_env_secret_indirection_and_routes(tmp_path: Path) -> None:
    toml = write(
        tmp_path / "p.toml",
        '[routes]\n"claude-3-5-haiku*" = "gpt-4o-mini"\n"*opus*" = "o3"\n'
        '[plugins.openai]\napi_key = {"$env" = "MY_KEY"}\nheaders = {"X-Title" = "t"}\n',
    )
    settings = load_settings({**BASE_ENV, "MY_KEY": "sk-secret-999999"}, config_path=toml, env_file=tmp_path / "x")
    assert settings.routes == (("claude-3-5-haiku*", "gpt-4o-mini"), ("*opus*", "o3"))
    assert settings.options_for("openai")["api_key"] == "sk-secret-999999"
    assert "sk-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "toml", "named"),
    [
        ({}, "", "OPENAI_API_KEY"),
        ({**BASE_ENV, "PORT": "eleven"}, "", "PORT"),
        ({**BASE_ENV, "PORT": "70000"}, "", "PORT"),
        ({**BASE_ENV, "LOG_LEVEL": "LOUD"}, "", "LOG_LEVEL"),
        ({**BASE_ENV, "OPENAI_BASE_URL": "ftp://x"}, "", "OPENAI_BASE_URL"),
        ({**BASE_ENV, "WEB_CONCURRENCY": "0"}, "", "WEB_CONCURRENCY"),
        (BASE_ENV, '[plugins.openai]\napi_key = {"$env" = "MISSING_VAR"}\n', "MISSING_VAR"),
        (BASE_ENV, "[ccproxy]\nbogus = 1\n", "ccproxy.bogus"),
        (BASE_ENV, "[ccproxy\n", "invalid TOML"),
    ],
)
def test_invalid_settings_name_the_setting(tmp_path: Path, env: dict[str, str], toml: str, named: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env, config_path=write(tmp_path / "p.toml", toml), env_file=tmp_path / "x")
    message = str(info.value)
    assert named in message
    assert "\n" not in message


def test_local_upstream_needs_no_key(tmp_path: Path) -> None:
    settings = load_settings({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"}, env_file=tmp_path / "x")
    assert settings.api_key is None


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(BASE_ENV, config_path=tmp_path / "nope.toml", env_file=tmp_path / "x")


def test_env_file_parsing(tmp_path: Path) -> None:
    path = write(tmp_path / ".env", '# c\n\nA=1\nB="two words"\nexport C=3\nD=x # trailing\n')
    assert parse_env_file(path) == {"A": "1", "B": "two words", "C": "3", "D": "x"}
    with pytest.raises(SettingsError, match=":1:"):
        parse_env_file(write(tmp_path / "bad.env", "NOEQUALS\n"))


def test_repository_plugins_toml_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "plugins.toml"
    settings = load_settings(BASE_ENV, config_path=example, env_file=tmp_path / "x")
    assert settings.provider == "openai"
