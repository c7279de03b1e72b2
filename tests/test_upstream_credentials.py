"""`user:password@` in OPENAI_BASE_URL becomes basic auth to that upstream, and is never printed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ccproxy.app import build_state
from ccproxy.interfaces import BasicCredentials
from ccproxy.settings import Settings, SettingsError, display_url, load_settings, split_credentials
from ccproxy.upstream import LeanUpstream

PASSWORD = "p@ss:w/rd%"
ENCODED_PASSWORD = "p%40ss%3Aw%2Frd%25"
URL = f"http://us%40er:{ENCODED_PASSWORD}@upstream.example:8080/v1"
CLEAN_URL = "http://upstream.example:8080/v1"


def load(tmp_path: Path, env: dict[str, str], toml: str = "") -> Settings:
    config = tmp_path / "p.toml"
    config.write_text(toml, encoding="utf-8")
    return load_settings(env, env_file=tmp_path / "none.env", config_path=config)


def test_credentials_are_split_off_and_percent_decoded() -> None:
    clean, credentials = split_credentials(URL)
    assert clean == CLEAN_URL
    assert credentials == BasicCredentials("us@er", PASSWORD)


@pytest.mark.parametrize(
    ("url", "user", "password"),
    [
        ("https://user@host/v1", "user", ""),
        ("https://:token@host/v1", "", "token"),
        ("https://%C3%A9:%E2%82%AC@host/v1", "é", "€"),
    ],
)
def test_partial_and_non_ascii_credentials(url: str, user: str, password: str) -> None:
    clean, credentials = split_credentials(url)
    assert clean == "https://host/v1"
    assert credentials == BasicCredentials(user, password)
    expected = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert credentials.authorization() == f"Basic {expected}"


def test_url_without_credentials_is_unchanged() -> None:
    assert split_credentials("https://api.openai.com/v1") == ("https://api.openai.com/v1", None)
    assert split_credentials("https://@host/v1") == ("https://host/v1", None)


@pytest.mark.parametrize(
    "url",
    [URL, f"ftp://u:{ENCODED_PASSWORD}@x", f"u:{ENCODED_PASSWORD}@host/v1", f"http://u:{ENCODED_PASSWORD}/x@host"],
)
def test_display_url_hides_credentials(url: str) -> None:
    shown = display_url(url)
    assert ENCODED_PASSWORD not in shown and "us%40er" not in shown
    assert "***@" in shown


def test_credentials_replace_the_key_and_reach_the_upstream_as_basic_auth(tmp_path: Path) -> None:
    settings = load(tmp_path, {"OPENAI_BASE_URL": URL})
    state = build_state(settings)
    default = state.backends["default"]
    assert isinstance(default.transport, LeanUpstream)  # the default transport: its request head holds the header
    assert default.transport.base_url + default.path == CLEAN_URL + "/chat/completions"
    token = base64.b64encode(f"us@er:{PASSWORD}".encode()).decode()
    assert f"authorization: Basic {token}\r\n".encode() in default.transport.headers
    # Upstream text that echoes the password or the whole header is redacted.
    assert state.redact(f"bad password {PASSWORD} in Basic {token}") == ("bad password [redacted] in Basic [redacted]")
    for text in (repr(settings), repr(default.provider.config)):
        assert ENCODED_PASSWORD not in text and PASSWORD not in text


def test_credentials_and_a_key_are_refused_in_one_line_without_the_password(tmp_path: Path) -> None:
    for key in ("OPENAI_API_KEY", "OPENROUTER_API_KEY"):
        with pytest.raises(SettingsError) as info:
            load(tmp_path, {"OPENAI_BASE_URL": URL, key: "sk-test-key-123456"})
        message = str(info.value)
        assert message.startswith("OPENAI_BASE_URL:") and "keep only one" in message
        assert "\n" not in message and ENCODED_PASSWORD not in message and PASSWORD not in message


def test_credentials_in_the_provider_table_are_checked_too(tmp_path: Path) -> None:
    toml = f'[plugins.openai]\nbase_url = "{URL}"\n'
    settings = load(tmp_path, {"OPENAI_API_KEY": "sk-test-key-123456"}, toml)
    with pytest.raises(SettingsError) as info:
        build_state(settings)
    assert str(info.value).startswith("plugins.openai.base_url:")
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OPENAI_BASE_URL": f"ftp://u:{ENCODED_PASSWORD}@host/v1"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": f"u:{ENCODED_PASSWORD}@host/v1"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": f"http://u:{ENCODED_PASSWORD}@host:x/v1"}, "OPENAI_BASE_URL"),
        # Not percent-encoded: `u:123` would parse as host and port, the rest of the password as the path.
        ({"OPENAI_BASE_URL": "http://u:123/p#ss@host/v1", "OPENAI_API_KEY": "sk-x"}, "OPENAI_BASE_URL"),
        ({"OPENAI_BASE_URL": "http://u:123/pss@host/v1", "OPENAI_API_KEY": "sk-x"}, "OPENAI_BASE_URL"),
    ],
)
def test_errors_about_a_url_with_credentials_do_not_print_them(tmp_path: Path, env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, env)
    assert str(info.value).startswith(named + ":")
    for secret in (ENCODED_PASSWORD, PASSWORD, "123/p", "pss"):
        assert secret not in str(info.value)


def test_remote_upstream_without_key_or_credentials_still_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^OPENAI_API_KEY:"):
        load(tmp_path, {"OPENAI_BASE_URL": CLEAN_URL})
