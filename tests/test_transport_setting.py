"""`transport` in a backend's table picks its HTTP client: the lean one by default, aiohttp when asked; anything else
is a start-up error naming the key."""

from __future__ import annotations

import tomllib

import pytest
from sanic import Sanic

from ccproxy.app import create_app
from ccproxy.config import SettingsError, parse_config
from ccproxy.upstream import AiohttpUpstream, LeanUpstream
from tests.api.conftest import make_settings


def test_a_transport_that_does_not_exist_names_the_key() -> None:
    toml = '[backends.local]\nprovider = "openai"\ntransport = "curl"\n'
    with pytest.raises(SettingsError, match=r'backends\.local\.transport: expected "aiohttp" or "lean"'):
        parse_config(tomllib.loads(toml), {}, source="plugins.toml")


@pytest.mark.parametrize(
    ("table", "expected"),
    [({}, LeanUpstream), ({"transport": "lean"}, LeanUpstream), ({"transport": "aiohttp"}, AiohttpUpstream)],
)
def test_the_table_picks_the_backends_transport(table: dict[str, str], expected: type) -> None:
    Sanic.test_mode = True
    options = {"openai": {"retries": 0, **table}}
    app = create_app(make_settings(plugin_options=options))
    try:
        assert type(app.ctx.backends["default"].transport) is expected
    finally:
        Sanic.unregister_app(app)
