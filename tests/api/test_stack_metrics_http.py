"""The breaker and limiter series of GET /metrics are fed by the backends' upstream stacks through the real app
(named backends answered by FakeUpstreams; the limiter waits on a fake clock)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sanic import Sanic

from ccproxy import hookimpl
from ccproxy.app import CCProxyApp, create_app
from ccproxy.config import parse_config
from ccproxy.settings import Settings
from ccproxy.upstream import RateLimitedUpstream, UpstreamWrapper
from ccproxy.upstream.fake import FakeUpstream, Handler
from tests.api.conftest import sdk_like
from tests.support.backends import HELLO, PlainProvider, backends_toml, failing, swap_transports
from tests.support.fake_clock import FakeClock

AppMaker = Callable[[str, dict[str, Handler]], tuple[CCProxyApp, dict[str, FakeUpstream]]]


class Providers:
    @hookimpl
    def ccproxy_register_providers(self, register: Any) -> None:
        register(PlainProvider)


@pytest.fixture
def make_app() -> Iterator[AppMaker]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(toml: str, handlers: dict[str, Handler]) -> tuple[CCProxyApp, dict[str, FakeUpstream]]:
        file = parse_config(tomllib.loads(toml), {})
        settings = Settings(backend_tables=file.backends, routes=tuple(file.routes.items()))
        app = sdk_like(create_app(settings, plugins=[("providers", Providers())]))
        made.append(app)
        return app, swap_transports(app.ctx.backends, handlers)

    yield build
    for app in made:
        Sanic.unregister_app(app)


async def post(app: CCProxyApp) -> Any:
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(HELLO))
    return response


async def scrape(app: CCProxyApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _, response = await app.asgi_client.get("/metrics")
    assert response.status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def breaker(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], backend: str) -> float | None:
    return found.get(("ccproxy_breaker_state", (("backend", backend),)))


async def test_the_breaker_gauge_follows_the_circuit_of_each_backend(make_app: AppMaker) -> None:
    toml = backends_toml(
        {"a": "retries = 0\nbreaker_failures = 2", "b": "retries = 0\nbreaker_failures = 2"},
        {"claude-opus-*": ["a:m", "b:m"]},
    )
    app, fakes = make_app(toml, {"a": lambda request: failing(503)})
    assert (await post(app)).status == 200  # a failed once (still closed), b answered
    found = await scrape(app)
    assert (breaker(found, "a"), breaker(found, "b")) == (0.0, 0.0)
    assert (await post(app)).status == 200  # a's second failure opens its circuit
    assert breaker(await scrape(app), "a") == 1.0
    assert (await post(app)).status == 200  # a refused by its breaker, not called
    assert len(fakes["a"].requests) == 2
    found = await scrape(app)
    assert (breaker(found, "a"), breaker(found, "b")) == (1.0, 0.0)
    _, summary = await app.asgi_client.get("/v1/metrics")
    assert summary.json["backends"]["b"]["breaker"] == "closed"


async def test_a_request_that_waits_for_the_rate_limiter_is_counted_with_its_wait(make_app: AppMaker) -> None:
    toml = backends_toml({"a": "retries = 0\nrpm = 1\nlimit_wait = 120"}, {"claude-opus-*": "a:m"})
    app, _ = make_app(toml, {})
    clock = FakeClock()
    limiter = app.ctx.backends["a"].upstream
    while not isinstance(limiter, RateLimitedUpstream):
        assert isinstance(limiter, UpstreamWrapper), "the backend's stack has no rate limiter"
        limiter = limiter.inner
    limiter.clock, limiter.sleep = clock, clock.sleep
    assert (await clock.run(post(app))).status == 200
    assert ("ccproxy_limiter_waits_total", (("backend", "a"),)) not in await scrape(app)
    clock.advance(20)
    assert (await clock.run(post(app))).status == 200  # waits the 40 s left of the one-minute window
    found = await scrape(app)
    assert found[("ccproxy_limiter_waits_total", (("backend", "a"),))] == 1
    assert found[("ccproxy_limiter_wait_seconds_total", (("backend", "a"),))] == pytest.approx(40)
