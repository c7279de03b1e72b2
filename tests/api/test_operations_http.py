"""Client keys, the admin gate, usage, metrics and the usage log through the real app (sanic-testing, ASGI)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.events import RequestRecord
from ccproxy.hookspecs import RegisterObserver, hookimpl
from ccproxy.interfaces import Observer
from ccproxy.keys import key_id
from ccproxy.quota import WINDOW_SECONDS, MemoryLimitStore
from ccproxy.settings import Settings
from ccproxy.usage import Row, RowKey, SharedUnavailable, SharedUsage, UsageTotals, WorkerFiles
from tests.api.conftest import NOWHERE, sdk_like
from tests.support.mock_upstream import MockUpstream

KEY_A = "ck-team-a-0123456789abcdef"
KEY_B = "ck-team-b-fedcba9876543210"
ADMIN = "admin-0123456789abcdef0123"
HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
# gpt-5: $1.25 / M input, $10 / M output, $0.125 / M cache reads.
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-5",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12_000, "completion_tokens": 3_000, "prompt_tokens_details": {"cached_tokens": 2_000}},
}
COST = (10_000 * 1.25 + 3_000 * 10 + 2_000 * 0.125) / 1e6


def settings(**kwargs: Any) -> Settings:
    values: dict[str, Any] = {"api_key": "sk-test-0123456789", "base_url": NOWHERE, "big_model": "gpt-5"}
    return Settings(**{**values, **kwargs})


@pytest.fixture
def make_app(upstream: MockUpstream) -> Iterator[Callable[..., CCProxyApp]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(**kwargs: Any) -> CCProxyApp:
        app = sdk_like(create_app(settings(**{"base_url": upstream.base_url, **kwargs})))
        made.append(app)
        return app

    yield build
    for app in made:
        Sanic.unregister_app(app)


async def call(app: CCProxyApp, path: str = "/v1/messages", body: Any = HELLO, **headers: str) -> Any:
    if body is None:
        _, response = await app.asgi_client.get(path, headers=headers)
    else:
        _, response = await app.asgi_client.post(path, content=json.dumps(body), headers=headers)
    return response


def assert_error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status == status, response.text
    assert response.json["type"] == "error" and response.json["error"]["type"] == error_type, response.text
    error: dict[str, Any] = response.json["error"]
    return error


# ------------------------------------------------------------------------------------------------ client keys


async def test_without_a_key_every_v1_request_is_refused_and_health_stays_open(
    make_app: Callable[..., CCProxyApp],
) -> None:
    app = make_app(api_keys=(KEY_A,))
    assert_error(await call(app), 401, "authentication_error")
    assert_error(await call(app, "/v1/models", None), 401, "authentication_error")
    assert_error(await call(app, "/v1/messages/count_tokens", HELLO), 401, "authentication_error")
    assert_error(await call(app, **{"x-api-key": KEY_B}), 401, "authentication_error")
    assert_error(await call(app, authorization=f"Basic {KEY_A}"), 401, "authentication_error")
    _, health = await app.asgi_client.get("/")
    assert health.status == 200 and health.json["status"] == "ok"


@pytest.mark.parametrize("header", ["x-api-key", "authorization"])
async def test_a_configured_key_passes_as_x_api_key_or_bearer(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream, header: str
) -> None:
    app = make_app(api_keys=(KEY_A,))
    upstream.post(upstream.chat_url, payload=COMPLETION)
    value = KEY_A if header == "x-api-key" else f"Bearer {KEY_A}"
    response = await call(app, **{header: value})
    assert response.status == 200, response.text
    models = await call(app, "/v1/models", None, **{header: value})
    assert models.status == 200


async def test_a_key_over_its_rpm_gets_429_with_retry_after(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(auth_options={"keys": [{"key": KEY_A, "name": "team-a", "rpm": 2}, {"key": KEY_B}]})
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    for _ in range(2):
        assert (await call(app, **{"x-api-key": KEY_A})).status == 200
    limited = await call(app, **{"x-api-key": KEY_A})
    error = assert_error(limited, 429, "rate_limit_error")
    assert "team-a" in error["message"] and "2 requests per minute" in error["message"]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert (await call(app, **{"x-api-key": KEY_B})).status == 200  # other keys are not affected


async def test_a_key_over_its_budget_gets_429_until_the_period_ends(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    budget = COST * 1.5  # the first request fits, the second takes the key over
    app = make_app(auth_options={"keys": [{"key": KEY_A, "name": "team-a", "budget_usd": budget}]})
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    assert (await call(app, **{"x-api-key": KEY_A})).status == 200
    assert (await call(app, **{"x-api-key": KEY_A})).status == 200
    refused = await call(app, **{"x-api-key": KEY_A})
    error = assert_error(refused, 429, "rate_limit_error")
    assert "budget" in error["message"] and "today (UTC)" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86400


class SharedStore(MemoryLimitStore):
    """What a shared store (ccproxy-redis's) would be: here, one in-process store two apps share, that says what it
    was asked and how often it was flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.flushes = 0

    async def take(self, name: str, limit: int, now: float, window: float = WINDOW_SECONDS) -> float | None:
        self.names.append(name)
        return await super().take(name, limit, now, window)

    async def flush(self) -> None:
        self.flushes += 1


class SharingCache:
    """A cache backend plugin ("sharing") whose backends offer `store` as their shared limit store, and `usage` as
    their shared usage store."""

    def __init__(self, store: SharedStore | None = None, usage: SharedUsage | None = None) -> None:
        self.store = store
        self.usage = usage

    @hookimpl
    def ccproxy_register_cache_backends(self, register: Any) -> None:
        store, usage = self.store, self.usage

        class Sharing(MemoryCacheBackend):
            def shared_limit_store(self) -> SharedStore | None:
                return store

            def shared_usage_store(self) -> SharedUsage | None:
                return usage

        register("sharing", lambda options: Sharing())


async def test_a_cache_backends_shared_limit_store_counts_the_keys_of_every_app(upstream: MockUpstream) -> None:
    """Two apps (two processes of a fleet) whose cache backend offers one shared store: a key with rpm = 2 gets two
    requests from both together; at stop, what is on its way to the store is flushed."""
    Sanic.test_mode = True
    store = SharedStore()
    config = {"keys": [{"key": KEY_A, "name": "team-a", "rpm": 2}]}
    apps = [
        sdk_like(
            create_app(
                settings(base_url=upstream.base_url, auth_options=config, cache="sharing"),
                plugins=[("sharing", SharingCache(store))],
            )
        )
        for _ in range(2)
    ]
    try:
        upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
        assert (await call(apps[0], **{"x-api-key": KEY_A})).status == 200
        assert (await call(apps[1], **{"x-api-key": KEY_A})).status == 200
        assert_error(await call(apps[0], **{"x-api-key": KEY_A}), 429, "rate_limit_error")
        assert_error(await call(apps[1], **{"x-api-key": KEY_A}), 429, "rate_limit_error")
        assert store.names == ["rpm:" + key_id(KEY_A)] * 4
        assert store.flushes >= 2  # each app's server stopped after its requests (sanic-testing runs one per call)
    finally:
        for app in apps:
            Sanic.unregister_app(app)


async def test_a_key_over_its_tpm_gets_429(make_app: Callable[..., CCProxyApp], upstream: MockUpstream) -> None:
    app = make_app(auth_options={"keys": [{"key": KEY_A, "tpm": 15_000}]})
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    assert (await call(app, **{"x-api-key": KEY_A})).status == 200  # 15,000 tokens used
    assert_error(await call(app, **{"x-api-key": KEY_A}), 429, "rate_limit_error")


async def test_a_key_limited_to_some_models_is_refused_others(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(auth_options={"keys": [{"key": KEY_A, "name": "haiku-only", "models": ["claude-*HAIKU*"]}]})
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    error = assert_error(await call(app, **{"x-api-key": KEY_A}), 403, "permission_error")
    assert "haiku-only" in error["message"] and "claude-opus-4-8" in error["message"]
    haiku = {**HELLO, "model": "claude-haiku-4-5"}
    assert (await call(app, body=haiku, **{"x-api-key": KEY_A})).status == 200


# ---------------------------------------------------------------------------------------------- admin, usage


async def test_usage_sums_by_key_model_and_day_for_the_admin(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(api_keys=(KEY_A,), auth_options={"keys": [{"key": KEY_B, "name": "team-b"}]}, admin_key=ADMIN)
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    for key in (KEY_A, KEY_A, KEY_B):
        assert (await call(app, **{"x-api-key": key})).status == 200
    assert_error(await call(app, "/v1/usage", None), 401, "authentication_error")
    assert_error(await call(app, "/v1/usage", None, **{"x-api-key": KEY_A}), 403, "permission_error")
    response = await call(app, "/v1/usage", None, authorization=f"Bearer {ADMIN}")
    assert response.status == 200, response.text
    usage = response.json
    assert usage["scope"] == "process" and usage["totals"]["requests"] == 3
    assert usage["totals"]["input_tokens"] == 30_000 and usage["totals"]["cache_read_tokens"] == 6_000
    assert usage["totals"]["cost_usd"] == pytest.approx(3 * COST)
    assert usage["by_key"][key_id(KEY_A)]["requests"] == 2 and usage["by_key"][key_id(KEY_B)]["name"] == "team-b"
    assert list(usage["by_model"]) == ["gpt-5"] and len(usage["by_day"]) == 1
    filtered = await call(app, f"/v1/usage?key={key_id(KEY_B)}", None, **{"x-api-key": ADMIN})
    assert filtered.json["totals"]["requests"] == 1
    assert KEY_A not in response.text and KEY_B not in response.text


async def test_with_several_workers_usage_sums_every_workers_file(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream, tmp_path: Path
) -> None:
    """`ccproxy serve --workers N` gives every worker one directory (metrics_dir): each worker publishes its sums
    there, and GET /v1/usage, whichever worker answers it, sums them all."""
    other_worker = UsageTotals()
    other_worker.add_all([RequestRecord("req_1", key_id(KEY_B), upstream_model="gpt-5", input_tokens=7)] * 5)
    await WorkerFiles(str(tmp_path), pid=999_999).publish(other_worker)
    app = make_app(api_keys=(KEY_A, KEY_B), admin_key=ADMIN, metrics_dir=str(tmp_path))
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    for _ in range(2):
        assert (await call(app, **{"x-api-key": KEY_A})).status == 200
    usage = (await call(app, "/v1/usage", None, **{"x-api-key": ADMIN})).json
    assert usage["scope"] == "server" and "warning" not in usage
    assert usage["totals"]["requests"] == 7 and usage["totals"]["input_tokens"] == 2 * 10_000 + 5 * 7
    assert usage["by_key"][key_id(KEY_A)]["requests"] == 2 and usage["by_key"][key_id(KEY_B)]["requests"] == 5
    files = sorted(path.name.split("-")[0] for path in tmp_path.glob("usage_*"))
    assert files == sorted(["usage_999999", f"usage_{os.getpid()}"])


class DownUsage(SharedUsage):
    """A shared usage store that never answers."""

    async def publish(self, totals: UsageTotals) -> None:
        raise SharedUnavailable("down")

    async def read(self, totals: UsageTotals, *, day: str | None = None) -> tuple[dict[RowKey, Row], float]:
        raise SharedUnavailable("down")


async def test_when_the_shared_usage_does_not_answer_usage_is_this_processs_and_says_so(
    upstream: MockUpstream,
) -> None:
    Sanic.test_mode = True
    app = sdk_like(
        create_app(
            settings(base_url=upstream.base_url, admin_key=ADMIN, cache="sharing"),
            plugins=[("sharing", SharingCache(usage=DownUsage()))],
        )
    )
    try:
        upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
        assert (await call(app)).status == 200
        response = await call(app, "/v1/usage", None, **{"x-api-key": ADMIN})
        assert response.status == 200, response.text
        assert response.json["scope"] == "process" and response.json["totals"]["requests"] == 1
        assert "this process's sums only" in response.json["warning"]
    finally:
        Sanic.unregister_app(app)


async def test_without_an_admin_key_admin_endpoints_refuse_clients_that_are_not_loopback(
    make_app: Callable[..., CCProxyApp],
) -> None:
    app = make_app()
    # The ASGI test client's address is 1.2.3.4; the loopback side is tested end to end (tests/e2e).
    error = assert_error(await call(app, "/v1/usage", None), 403, "permission_error")
    assert "CCPROXY_ADMIN_KEY" in error["message"]
    spoofed = await call(app, "/v1/usage", None, **{"x-forwarded-for": "127.0.0.1", "forwarded": "for=127.0.0.1"})
    assert spoofed.status == 403  # forwarded headers are not trusted unless Sanic is told to (REAL_IP_HEADER)
    with_admin = make_app(admin_key=ADMIN)
    assert (await call(with_admin, "/v1/usage", None, **{"x-api-key": ADMIN})).status == 200


# --------------------------------------------------------------------------------------------------- metrics


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_requests_tokens_and_cost(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(api_keys=(KEY_A,))
    upstream.post(upstream.chat_url, payload=COMPLETION, repeat=True)
    for _ in range(3):
        assert (await call(app, **{"x-api-key": KEY_A})).status == 200
    await call(app)  # 401
    _, response = await app.asgi_client.get("/metrics")  # outside /v1: no key needed, like a health check
    assert response.status == 200 and response.headers["content-type"].startswith("text/plain")
    found = scrape(response.text)
    where = {("backend", "default"), ("model", "gpt-5")}
    assert found[("ccproxy_requests_total", frozenset({*where, ("endpoint", "messages"), ("status", "200")}))] == 3
    assert found[("ccproxy_tokens_total", frozenset({*where, ("kind", "output")}))] == 9000
    cost = found[("ccproxy_cost_usd_total", frozenset({*where, ("key", key_id(KEY_A))}))]
    assert cost == pytest.approx(3 * COST)
    assert found[("ccproxy_requests_in_flight", frozenset())] == 0
    summary = await call(app, "/v1/metrics", None, **{"x-api-key": KEY_A})
    assert summary.status == 200 and summary.json["requests"] == 3
    assert summary.json["backends"]["default"]["health"] == "healthy"
    assert summary.json["latency_ms"]["samples"] == 3


async def test_one_usage_log_record_per_request_with_tokens_and_cost(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(api_keys=(KEY_A,))
    upstream.post(upstream.chat_url, payload=COMPLETION)
    logger = logging.getLogger("ccproxy")
    logger.addHandler(caplog.handler)  # the app's logger does not propagate
    try:
        response = await call(app, **{"x-api-key": KEY_A})
    finally:
        logger.removeHandler(caplog.handler)
    [record] = [record for record in caplog.records if record.name == "ccproxy.usage"]
    fields = record.fields  # type: ignore[attr-defined]  # set by the usage observer
    assert fields["key_id"] == key_id(KEY_A) and response.status == 200
    assert (fields["input_tokens"], fields["output_tokens"], fields["cache_read_tokens"]) == (10_000, 3_000, 2_000)
    assert fields["cost_usd"] == pytest.approx(COST) and fields["status"] == 200
    assert KEY_A not in caplog.text


class SeesTheCost:
    """A plugin's observer, immediate (the default): it gets the record as the request ends, already priced."""

    def __init__(self) -> None:
        self.costs: list[float | None] = []

    @hookimpl
    def ccproxy_register_observers(self, register: RegisterObserver) -> None:
        plugin = self

        class Costs(Observer):
            def request_done(self, record: RequestRecord) -> None:
                plugin.costs.append(record.cost_usd)

        register(Costs())


async def test_a_plugins_immediate_observer_sees_the_cost_when_the_request_ends(
    upstream: MockUpstream,
) -> None:
    Sanic.test_mode = True
    plugin = SeesTheCost()
    app = sdk_like(create_app(settings(base_url=upstream.base_url), plugins=[("sees-the-cost", plugin)]))
    try:
        upstream.post(upstream.chat_url, payload=COMPLETION)
        assert (await call(app)).status == 200
        assert plugin.costs == [pytest.approx(COST)]
    finally:
        Sanic.unregister_app(app)
