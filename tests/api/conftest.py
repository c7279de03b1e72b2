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


@pytest.fixture
def app() -> Iterator[CCProxyApp]:
    Sanic.test_mode = True
    application = create_app(make_settings())
    yield application
    Sanic.unregister_app(application)  # let the next test build a fresh app under the same name


@pytest.fixture
def upstream() -> Iterator[aioresponses]:
    # Only upstream calls are mocked; the ASGI test client talks to the app in-process.
    with aioresponses(passthrough=["http://127.0.0.1", "http://mockserver"]) as mocked:
        yield mocked
