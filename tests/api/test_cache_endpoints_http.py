"""GET /v1/cache/stats and POST /v1/cache/clear behind the admin key, and x-ccproxy-cache, through the real app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.config import CacheConfig
from ccproxy.response_cache import CACHE_HEADER
from tests.api.test_operations_http import ADMIN, COMPLETION, COST, HELLO, KEY_A, assert_error, call, scrape, settings
from tests.support.mock_upstream import MockUpstream
from tests.support.served_app import ServedApp, served

ON = CacheConfig(responses=True)


@pytest.fixture
def make_app(upstream: MockUpstream) -> Iterator[Callable[..., CCProxyApp]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(**kwargs: Any) -> CCProxyApp:
        app = create_app(settings(**{"base_url": upstream.base_url, **kwargs}))
        app.asgi_client.headers["host"] = "127.0.0.1:11434"
        app.asgi_client.headers["content-type"] = "application/json"
        made.append(app)
        return app

    yield build
    for app in made:
        Sanic.unregister_app(app)


async def served_call(
    client: ServedApp, path: str = "/v1/messages", body: Any = HELLO, **headers: str
) -> httpx.Response:
    """A request to an app started once for the whole test, as a server runs: sanic-testing's `asgi_client` stops
    the app after every request, and stopping cancels the response cache's stores still running."""
    if body is None:
        return await client.client.get(path, headers=headers)
    return await client.post(path, json.dumps(body).encode(), headers)


async def stored(app: CCProxyApp) -> None:
    """Until the answers sent so far are stored: the response cache stores an answer after it is sent."""
    responses = app.ctx.pipeline.responses
    assert responses is not None
    await asyncio.gather(*responses.tasks)


async def test_stats_and_clear_need_the_admin_key(make_app: Callable[..., CCProxyApp]) -> None:
    app = make_app(api_keys=(KEY_A,), admin_key=ADMIN, cache_options=ON)
    assert_error(await call(app, "/v1/cache/stats", None), 401, "authentication_error")
    assert_error(await call(app, "/v1/cache/stats", None, **{"x-api-key": KEY_A}), 403, "permission_error")
    assert_error(await call(app, "/v1/cache/clear", {}, **{"x-api-key": KEY_A}), 403, "permission_error")
    assert (await call(app, "/v1/cache/stats", None, **{"x-api-key": ADMIN})).status == 200


async def test_stats_count_hits_and_misses_and_clear_empties_the_cache(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(admin_key=ADMIN, cache_options=ON)
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    admin = {"x-api-key": ADMIN}
    async with served(app) as client:  # one server run, as in production (see `served_call`)
        first, second = await served_call(client), await served_call(client)
        assert (first.headers[CACHE_HEADER], second.headers[CACHE_HEADER]) == ("miss", "hit")
        assert first.json()["id"] != second.json()["id"]
        await stored(app)
        stats = (await served_call(client, "/v1/cache/stats", None, **admin)).json()
        assert (stats["backend"], stats["healthy"], stats["entries"]) == ("memory", True, 1)
        assert {key: stats["responses"][key] for key in ("enabled", "hits", "misses", "stores")} == {
            "enabled": True,
            "hits": 1,
            "misses": 1,
            "stores": 1,
        }
        assert stats["store"]["max_bytes"] > 0 and stats["evictions"] == 0
        cleared = await served_call(client, "/v1/cache/clear", {}, **admin)
        assert cleared.status_code == 200 and cleared.json() == {"backend": "memory", "cleared": 1}
        assert (await served_call(client)).headers[CACHE_HEADER] == "miss"
    assert [(sent.method, sent.path) for sent in upstream.requests] == [("POST", "/v1/chat/completions")] * 2


async def test_with_the_response_cache_off_stats_say_so_and_answers_carry_no_cache_header(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(admin_key=ADMIN)
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    answer = await call(app)
    assert answer.status == 200 and CACHE_HEADER not in answer.headers
    stats = (await call(app, "/v1/cache/stats", None, **{"x-api-key": ADMIN})).json
    assert stats["responses"] == {"enabled": False}


async def test_a_no_cache_request_is_a_miss(make_app: Callable[..., CCProxyApp], upstream: MockUpstream) -> None:
    app = make_app(cache_options=ON)
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    await call(app)
    assert (await call(app, **{"cache-control": "no-cache"})).headers[CACHE_HEADER] == "miss"
    assert (await call(app, "/v1/messages", HELLO)).headers[CACHE_HEADER] == "hit"


async def test_metrics_count_the_response_cache_and_a_hit_costs_nothing(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(cache_options=ON)
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    async with served(app) as client:
        for _ in range(3):
            assert (await served_call(client)).status_code == 200
        await stored(app)
        response = await client.get("/metrics")
    found = scrape(response.text)
    events = {
        kind: found.get(("ccproxy_cache_events_total", frozenset({("cache", "responses"), ("kind", kind)})))
        for kind in ("hit", "miss", "store")
    }
    assert events == {"hit": 2, "miss": 1, "store": 1}
    costs = [value for (name, _), value in found.items() if name == "ccproxy_cost_usd_total"]
    assert sum(costs) == pytest.approx(COST)  # only the miss was paid for
