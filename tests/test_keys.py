"""Client keys and the admin key: parsing, lookup by digest, key ids, limits in the config, the open-bind refusal."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from ccproxy.keys import KeyTable, is_loopback, key_id, presented_key, refuse_open_bind
from ccproxy.settings import Settings, SettingsError, load_settings

KEY_A = "ck-team-a-0123456789abcdef"
KEY_B = "ck-team-b-fedcba9876543210"
ADMIN = "admin-0123456789abcdef0123"


def settings(**kwargs: Any) -> Settings:
    return Settings(api_key="sk-upstream-0123456789", **kwargs)


def test_key_id_is_a_short_digest_prefix_never_the_key() -> None:
    assert key_id(KEY_A) == "key_" + hashlib.sha256(KEY_A.encode()).hexdigest()[:8]
    assert KEY_A not in key_id(KEY_A) and len(key_id(KEY_A)) == 12


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": KEY_A}, KEY_A),
        ({"authorization": f"Bearer {KEY_A}"}, KEY_A),
        ({"authorization": f"bearer   {KEY_A} "}, KEY_A),
        ({"x-api-key": KEY_A, "authorization": "Bearer other"}, KEY_A),
        ({"authorization": f"Basic {KEY_A}"}, None),
        ({"authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_presented_key_reads_x_api_key_then_bearer(headers: dict[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


def test_table_from_environment_and_auth_keys() -> None:
    table = KeyTable.from_settings(
        settings(
            api_keys=(KEY_A,),
            auth_options={"keys": [{"key": KEY_B, "name": "team-b", "models": ["claude-*"], "rpm": 5}]},
        )
    )
    a, b = table.client(KEY_A), table.client(KEY_B)
    assert a is not None and a.name == "key-1" and not a.limited and a.models is None
    assert b is not None and b.name == "team-b" and b.rpm == 5 and b.models == ("claude-*",) and b.limited
    assert table.client(KEY_A[:-1]) is None and table.client("") is None
    assert set(table.by_id) == {key_id(KEY_A), key_id(KEY_B)}


def test_admin_key_is_not_a_client_key() -> None:
    table = KeyTable.from_settings(settings(api_keys=(KEY_A,), admin_key=ADMIN))
    assert table.is_admin(ADMIN) and not table.is_admin(KEY_A) and not table.is_admin(None)
    assert table.client(ADMIN) is None
    assert KeyTable.from_settings(settings(auth_options={"admin_key": ADMIN})).is_admin(ADMIN)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"keys": [{"key": "short"}]}, "auth.keys[0].key: expected a key of at least 16"),
        ({"keys": [{"key": KEY_A, "rpm": "ten"}]}, "auth.keys[0].rpm: expected an integer >= 0"),
        ({"keys": [{"key": KEY_A, "budget_usd": -1}]}, "auth.keys[0].budget_usd: expected a number of US dollars"),
        ({"keys": [{"key": KEY_A, "budget_period": "week"}]}, "auth.keys[0].budget_period: expected 'day' or 'month'"),
        ({"keys": [{"key": KEY_A, "colour": 1}]}, "auth.keys[0].colour: unknown setting"),
        ({"keyz": []}, "auth.keyz: unknown setting"),
    ],
)
def test_auth_table_mistakes_name_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        KeyTable.from_settings(settings(auth_options=table))
    assert str(caught.value).startswith(message), caught.value
    assert KEY_A not in str(caught.value)


def test_auth_keys_come_from_the_environment_by_reference(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text('[[auth.keys]]\nkey = {"$env" = "TEAM_KEY"}\nname = "team"\nbudget_usd = 5\n')
    loaded = load_settings(
        {"OPENAI_API_KEY": "sk-upstream-0123456789", "TEAM_KEY": KEY_A}, config_path=config, env_file=tmp_path / "x"
    )
    client = KeyTable.from_settings(loaded).client(KEY_A)
    assert client is not None and client.budget_usd == 5 and client.budget_period == "day"


def test_environment_keys_are_comma_separated_and_checked(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-upstream-0123456789", "CCPROXY_API_KEYS": f" {KEY_A} ,{KEY_B},"}
    assert load_settings(env, env_file=tmp_path / "x").api_keys == (KEY_A, KEY_B)
    with pytest.raises(SettingsError, match="CCPROXY_API_KEYS: a key needs at least 16"):
        load_settings({**env, "CCPROXY_API_KEYS": "short"}, env_file=tmp_path / "x")
    with pytest.raises(SettingsError, match="CCPROXY_ADMIN_KEY: a key needs at least 16"):
        load_settings({**env, "CCPROXY_ADMIN_KEY": "x y" * 8}, env_file=tmp_path / "x")


def test_keys_never_show_in_the_settings_repr() -> None:
    shown = repr(settings(api_keys=(KEY_A,), admin_key=ADMIN, auth_options={"keys": [{"key": KEY_B}]}))
    assert KEY_A not in shown and ADMIN not in shown and KEY_B not in shown


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("127.1.2.3", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("proxy.example", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_bind_without_keys_is_refused_with_the_reason() -> None:
    with pytest.raises(SettingsError) as caught:
        refuse_open_bind("0.0.0.0", settings(), [])
    assert "no client keys are configured" in str(caught.value) and "--allow-unauthenticated" in str(caught.value)
    refuse_open_bind("127.0.0.1", settings(), [])
    refuse_open_bind("0.0.0.0", settings(), [object()])  # an authenticator guards /v1/*
    refuse_open_bind("0.0.0.0", settings(allow_unauthenticated=True), [])
    refuse_open_bind("0.0.0.0", settings(auth_options={"allow_unauthenticated": True}), [])
    explicit_no = settings(allow_unauthenticated=False, auth_options={"allow_unauthenticated": True})
    with pytest.raises(SettingsError):
        refuse_open_bind("0.0.0.0", explicit_no, [])
