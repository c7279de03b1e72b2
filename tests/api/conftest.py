"""An app built by the real factory; its upstream a real local server scripted per test (mock_upstream.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.settings import Settings
from tests.support.mock_upstream import MockUpstream, mock_upstream

# Where an app that never reaches its upstream points (tests of refusals and settings); one that does is built with
# the `upstream` fixture's base_url.
NOWHERE = "http://upstream.invalid/v1"
# The ASGI test client sends `Host: mockserver:1234`, a name the proxy refuses (ccproxy/http/edge.py).
CLIENT_HOST = "127.0.0.1:11434"
API_KEY = "sk-proxy-secret-0123456789"


def make_settings(**kwargs: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": NOWHERE,
        "big_model": "gpt-5",
        "small_model": "gpt-4o-mini",
    }
    values.update(kwargs)
    return Settings(**values)


def sdk_like(application: CCProxyApp) -> CCProxyApp:
    """Make the app's ASGI test client send what the Anthropic SDKs send: a loopback Host and JSON bodies."""
    application.asgi_client.headers["host"] = CLIENT_HOST
    application.asgi_client.headers["content-type"] = "application/json"
    return application


@pytest.fixture
async def upstream() -> AsyncIterator[MockUpstream]:
    # A real server in the test's loop, where the ASGI test client drives the app: both transports reach it.
    async with mock_upstream() as server:
        yield server


@pytest.fixture
def app(upstream: MockUpstream) -> Iterator[CCProxyApp]:
    Sanic.test_mode = True
    application = sdk_like(create_app(make_settings(base_url=upstream.base_url)))
    yield application
    Sanic.unregister_app(application)  # let the next test build a fresh app under the same name
