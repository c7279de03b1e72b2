"""An app built by the real factory, with the upstream mocked by aioresponses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aioresponses import aioresponses
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.settings import Settings

UPSTREAM = "http://upstream.test/v1"
# The ASGI test client sends `Host: mockserver:1234`, a name the proxy refuses (ccproxy/http/edge.py).
CLIENT_HOST = "127.0.0.1:11434"
CHAT_URL = UPSTREAM + "/chat/completions"
API_KEY = "sk-proxy-secret-0123456789"


def make_settings(**kwargs: Any) -> Settings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": UPSTREAM,
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
def app() -> Iterator[CCProxyApp]:
    Sanic.test_mode = True
    application = sdk_like(create_app(make_settings()))
    yield application
    Sanic.unregister_app(application)  # let the next test build a fresh app under the same name


@pytest.fixture
def upstream() -> Iterator[aioresponses]:
    # Only upstream calls are mocked; the ASGI test client talks to the app in-process.
    with aioresponses(passthrough=["http://127.0.0.1", "http://mockserver"]) as mocked:
        yield mocked
