"""Health, readiness and status endpoints, the request cap with its 529, and the body limit's 413, through the real
app (sanic-testing, ASGI) — issue 11 items 6 and 7."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.memory import HeapTrimmer
from ccproxy.settings import Settings
from tests.api.conftest import sdk_like
from tests.support.mock_upstream import Answer, MockUpstream, Received
from tests.support.served_app import served

ADMIN = "admin-0123456789abcdef0123"
CLIENT = "ck-team-a-0123456789abcdef"
HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-5",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}


@pytest.fixture
def make_app(upstream: MockUpstream) -> Iterator[Callable[..., CCProxyApp]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(**kwargs: Any) -> CCProxyApp:
        values: dict[str, Any] = {"api_key": "sk-test-0123456789", "base_url": upstream.base_url, "big_model": "gpt-5"}
        app = sdk_like(create_app(Settings(**{**values, **kwargs})))
        made.append(app)
        return app

    yield build
    for app in made:
        Sanic.unregister_app(app)


class UnreachableCache(MemoryCacheBackend):
    """A cache whose store is down (what the Redis backend answers while Redis is unreachable)."""

    async def ready(self) -> str | None:
        return "Redis at redis:6379 is unreachable (connection refused)"


async def test_health_and_ready_answer_without_keys_and_with_any_host(make_app: Callable[..., CCProxyApp]) -> None:
    app = make_app(api_keys=(CLIENT,))
    for path in ("/health", "/ready", "/"):
        _, response = await app.asgi_client.get(path, headers={"host": "lb.internal:8080"})
        assert response.status == 200, (path, response.text)
    _, response = await app.asgi_client.get("/health")
    assert response.json == {"status": "ok"}
    _, response = await app.asgi_client.get("/ready")
    assert response.json == {"status": "ready", "backends": 1}


async def test_ready_is_503_while_the_shared_cache_is_unreachable(make_app: Callable[..., CCProxyApp]) -> None:
    app = make_app()
    app.ctx.cache = UnreachableCache()
    _, response = await app.asgi_client.get("/ready")
    assert response.status == 503
    assert response.json["status"] == "not_ready"
    assert response.json["problems"] == ["cache memory: Redis at redis:6379 is unreachable (connection refused)"]
    _, response = await app.asgi_client.get("/health")  # liveness says nothing about the store
    assert response.status == 200


async def test_status_needs_the_admin_key_when_one_is_set(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(api_keys=(CLIENT,), admin_key=ADMIN)
    _, response = await app.asgi_client.get("/v1/status", headers={"x-api-key": CLIENT})
    assert response.status == 403
    assert response.json["error"]["type"] == "permission_error"
    _, response = await app.asgi_client.get("/v1/status", headers={"x-api-key": ADMIN})
    assert response.status == 200, response.text
    status = response.json
    assert status["version"] and status["pid"] > 0 and status["workers"] == 1
    assert status["in_flight"] == 0 and status["max_concurrent_requests"] == 256
    assert {"pattern": "*", "targets": ["default:gpt-5"]} in status["routes"]
    backend = status["backends"]["default"]
    assert backend["provider"] == "openai"
    assert backend["base_url"] == upstream.chat_url
    assert backend["max_connections"] == 100


async def test_status_shows_an_open_breaker(make_app: Callable[..., CCProxyApp]) -> None:
    app = make_app(admin_key=ADMIN)
    backend = app.ctx.backends["default"]
    _, response = await app.asgi_client.get("/v1/status", headers={"x-api-key": ADMIN})
    assert response.json["backends"]["default"]["breaker"] == "off"  # the legacy backend has none
    backend.config = backend.config.replaced(breaker_failures=1, breaker_cooldown=60.0)
    _, response = await app.asgi_client.get("/v1/status", headers={"x-api-key": ADMIN})
    assert response.json["backends"]["default"]["breaker"] == "closed"
    breaker = app.ctx.upstream_states.breaker
    await breaker.record("default", failed=True, trial=False, now=time.monotonic(), threshold=1)
    _, response = await app.asgi_client.get("/v1/status", headers={"x-api-key": ADMIN})
    assert response.status == 200, response.text
    assert response.json["backends"]["default"]["breaker"] == "open"


async def test_over_the_request_cap_a_request_waits_then_gets_529(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(max_concurrent_requests=1, overload_wait=0.2)
    release = asyncio.Event()

    async def slow_answer(received: Received) -> Answer:
        await release.wait()
        return Answer(status=200, payload=COMPLETION)

    upstream.post(upstream.chat_url, callback=slow_answer, repeat=True)
    body = json.dumps(HELLO).encode()
    # Started once for all three requests: sanic-testing's client stops the app (and its upstream connections)
    # after each request, which would cut the first one off while the second is refused.
    async with served(app) as client:
        first = asyncio.create_task(client.post("/v1/messages", body))
        await asyncio.sleep(0.3)
        refused = await client.post("/v1/messages", body)
        assert refused.status_code == 529, refused.text
        assert refused.json()["type"] == "error"
        assert refused.json()["error"]["type"] == "overloaded_error"
        assert "MAX_CONCURRENT_REQUESTS" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "1"
        release.set()
        answered = await first
        assert answered.status_code == 200, answered.text
        again = await client.post("/v1/messages", body)  # the slot is free again
        assert again.status_code == 200, again.text
        assert app.ctx.gate is not None and app.ctx.gate.in_flight == 0
        metrics = await client.get("/metrics")
    shed = [line for line in metrics.text.splitlines() if line.startswith("ccproxy_requests_total{") and "529" in line]
    assert shed and shed[0].endswith(" 1.0"), metrics.text  # the refused request is counted, as a 529


class CountingTrimmer(HeapTrimmer):
    """Counts the big requests it is told about (bodies of at least 2,000 bytes here)."""

    def __init__(self) -> None:
        super().__init__(lambda: 1, min_body=2000)
        self.big = 0

    def big_request_done(self) -> None:
        self.big += 1


@pytest.mark.parametrize("cap", [256, 0])  # with the request gate and without one
async def test_the_heap_is_trimmed_after_big_requests_whatever_their_outcome(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream, cap: int
) -> None:
    app = make_app(max_concurrent_requests=cap)
    trimmer = app.ctx.trimmer = CountingTrimmer()
    long_text = "word " * 1000
    headers = {"content-type": "application/json"}
    for body, status in (
        (HELLO, 200),  # small: no trim
        ({**HELLO, "messages": [{"role": "user", "content": long_text}]}, 200),
        ({**HELLO, "messages": [{"role": "robot", "content": long_text}]}, 400),  # refused, but it was read
    ):
        _, response = await app.asgi_client.post("/v1/messages/count_tokens", content=json.dumps(body), headers=headers)
        assert response.status == status, response.text
    assert trimmer.big == 2
    upstream.post(upstream.chat_url, payload=COMPLETION)
    big_message = {**HELLO, "messages": [{"role": "user", "content": long_text}]}
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(big_message), headers=headers)
    assert response.status == 200, response.text
    assert trimmer.big == 3 and app.ctx.trimmer is trimmer
