"""Named backends through the real app: who served each answer (headers), direct `backend:model` requests, errors,
GET /v1/models, observer records and redaction of every backend's secrets; upstreams are FakeUpstreams."""

from __future__ import annotations

import base64
import json
import logging
import tomllib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pytest
from sanic import Sanic

from ccproxy import Upstream, hookimpl
from ccproxy.app import CCProxyApp, create_app
from ccproxy.config import parse_config
from ccproxy.settings import Settings
from ccproxy.upstream import UpstreamRequest, UpstreamTimeout
from ccproxy.upstream.fake import FakeResponse, FakeUpstream, Handler
from tests.api.conftest import sdk_like
from tests.support.anthropic_stream import accumulate, parse_sse
from tests.support.backends import HELLO, PlainProvider, Recorder, answer, backends_toml, failing, swap_transports

SECRET_B = "sk-backend-b-0123456789abcdef"


class ListingProvider(PlainProvider):
    """Lists its models with GET /models through the transport it is given."""

    name: ClassVar[str] = "listing"

    async def list_models(self, upstream: Upstream) -> Sequence[str] | None:
        request = UpstreamRequest(path="/models", body=b"", stream=False, deadline=1e12, method="GET")
        response = await upstream.send(request)
        return [entry["id"] for entry in json.loads(await response.read())["data"]]


class BrokenListingProvider(PlainProvider):
    name: ClassVar[str] = "broken-listing"

    async def list_models(self, upstream: Upstream) -> Sequence[str] | None:
        raise RuntimeError("a bug in the provider")


class Providers:
    @hookimpl
    def ccproxy_register_providers(self, register: Any) -> None:
        for provider in (PlainProvider, ListingProvider, BrokenListingProvider):
            register(provider)


class Observing:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @hookimpl
    def ccproxy_register_observers(self, register: Any) -> None:
        register(self.recorder)


TOML = backends_toml(
    {
        "a": "retries = 0",
        "b": f'retries = 1\napi_key = "{SECRET_B}"',
        "c": 'retries = 0\nbase_url = "https://u:pw-9876543210@c.example/v1"',
    },
    {"claude-opus-*": ["a:small", "b:big-1"], "claude-haiku-*": "c:tiny"},
)
AppMaker = Callable[..., tuple[CCProxyApp, dict[str, FakeUpstream]]]


@pytest.fixture
def make_app() -> Iterator[AppMaker]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(
        toml: str = TOML, handlers: dict[str, Handler] | None = None, plugins: Sequence[tuple[str, object]] = ()
    ) -> tuple[CCProxyApp, dict[str, FakeUpstream]]:
        file = parse_config(tomllib.loads(toml), {})
        settings = Settings(backend_tables=file.backends, routes=tuple(file.routes.items()))
        app = sdk_like(create_app(settings, plugins=[("providers", Providers()), *plugins]))
        made.append(app)
        return app, swap_transports(app.ctx.backends, handlers or {})

    yield build
    for app in made:
        Sanic.unregister_app(app)


async def post(app: CCProxyApp, body: dict[str, Any]) -> Any:
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(body))
    return response


async def test_a_json_answer_names_the_backend_and_model_that_served_it(make_app: AppMaker) -> None:
    app, fakes = make_app(handlers={"a": lambda request: failing(503)})
    response = await post(app, HELLO)
    assert response.status == 200 and response.json["content"][0]["text"] == "Hello!"
    assert (response.headers["x-ccproxy-backend"], response.headers["x-ccproxy-upstream-model"]) == ("b", "big-1")
    assert response.headers["request-id"].startswith("req_")
    assert len(fakes["a"].requests) == 1 and len(fakes["b"].requests) == 1


async def test_a_stream_names_the_backend_in_its_headers(make_app: AppMaker) -> None:
    app, _ = make_app()
    response = await post(app, {**HELLO, "model": "claude-haiku-4-5", "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert (response.headers["x-ccproxy-backend"], response.headers["x-ccproxy-upstream-model"]) == ("c", "tiny")
    assert accumulate(parse_sse(response.content))["content"] == [{"type": "text", "text": "Hello!"}]


async def test_an_error_of_the_chain_names_the_backend_it_came_from(make_app: AppMaker) -> None:
    app, fakes = make_app(handlers={"a": lambda request: failing(500), "b": lambda request: failing(503)})
    response = await post(app, HELLO)
    assert response.status == 503 and response.json["error"]["type"] == "overloaded_error"
    assert response.headers["x-ccproxy-backend"] == "b"
    assert len(fakes["b"].requests) == 2  # b's own retry, then the chain ran out


@pytest.mark.parametrize("backend", ["b", "c"])
async def test_every_backends_secrets_are_redacted_from_what_the_client_sees(make_app: AppMaker, backend: str) -> None:
    echo = f"Incorrect API key provided: {SECRET_B}; password pw-9876543210 refused"
    app, _ = make_app(handlers={backend: lambda request: failing(401, echo)})
    response = await post(app, {**HELLO, "model": f"{backend}:m"})
    assert response.status == 401
    message = response.json["error"]["message"]
    assert SECRET_B not in message and "pw-9876543210" not in message and message.count("[redacted]") == 2


@pytest.mark.parametrize(("requested", "backend", "model"), [("c:any-model", "c", "any-model"), ("a,x:y", "a", "x:y")])
async def test_backend_model_requests_go_straight_to_it(
    make_app: AppMaker, requested: str, backend: str, model: str
) -> None:
    app, fakes = make_app()
    response = await post(app, {**HELLO, "model": requested})
    assert (response.headers["x-ccproxy-backend"], response.headers["x-ccproxy-upstream-model"]) == (backend, model)
    assert json.loads(fakes[backend].requests[0].body)["model"] == model
    assert response.json["model"] == requested


async def test_an_unknown_backend_before_a_comma_is_a_400_naming_the_configured_ones(make_app: AppMaker) -> None:
    app, _ = make_app()
    response = await post(app, {**HELLO, "model": "openrouter,gpt-5"})
    assert response.status == 400 and response.json["type"] == "error"
    assert response.json["error"]["type"] == "invalid_request_error"
    assert "'openrouter' is not a configured backend; configured: a, b, c" in response.json["error"]["message"]
    assert "x-ccproxy-backend" not in response.headers  # no backend was chosen


async def test_a_model_no_route_matches_is_a_404_naming_the_routes(make_app: AppMaker) -> None:
    app, _ = make_app()
    response = await post(app, {**HELLO, "model": "gpt-4o"})
    assert response.status == 404 and response.json["error"]["type"] == "not_found_error"
    assert "'claude-opus-*', 'claude-haiku-*'" in response.json["error"]["message"]


async def test_models_lists_routes_backends_and_the_models_providers_can_list(
    make_app: AppMaker, caplog: pytest.LogCaptureFixture
) -> None:
    toml = backends_toml(
        {"a": 'provider = "listing"', "b": 'provider = "broken-listing"', "c": ""},
        {"claude-opus-*": ["a:m1", "c:m9"]},
    )
    listed = FakeResponse.json({"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]})
    app, fakes = make_app(toml, {"a": lambda request: listed if request.method == "GET" else answer(request)})
    logging.getLogger("ccproxy").addHandler(caplog.handler)  # the app's logger does not propagate
    for _ in range(2):
        _, response = await app.asgi_client.get("/v1/models")
        assert response.status == 200
    body = response.json
    ids = [entry["id"] for entry in body["data"]]
    assert ids[:2] == ["claude-opus-4-8", "claude-opus-4-5"] and ids[2:] == ["a:m1", "a:m2"]
    assert body["data"][0]["display_name"] == "claude-opus-4-8 (via a:m1 -> c:m9)"
    assert body["ccproxy"]["routes"] == [{"pattern": "claude-opus-*", "targets": ["a:m1", "c:m9"]}]
    assert body["ccproxy"]["backends"]["a"] == {"provider": "listing", "base_url": "http://127.0.0.1:9/v1"}
    assert [r.path for r in fakes["a"].requests] == ["/models"]  # listed once: the second answer came from the cache
    assert "backend b: listing its models failed" in caplog.text


async def test_user_and_password_in_a_backends_base_url_become_its_basic_auth(make_app: AppMaker) -> None:
    app, _ = make_app()
    backend = app.ctx.backends["c"]
    token = base64.b64encode(b"u:pw-9876543210").decode()
    assert backend.provider.headers()["authorization"] == f"Basic {token}"
    assert (
        backend.provider.config.base_url == "https://c.example/v1" and backend.config.base_url == "https://c.example/v1"
    )
    assert "authorization" not in app.ctx.backends["a"].provider.headers()  # a local backend with no key sends none


async def test_models_never_shows_a_backends_credentials(make_app: AppMaker) -> None:
    app, _ = make_app()
    _, response = await app.asgi_client.get("/v1/models")
    assert response.json["ccproxy"]["backends"]["c"]["base_url"] == "https://c.example/v1"
    assert "pw-9876543210" not in response.text and SECRET_B not in response.text


async def test_observers_get_the_backend_retries_fallbacks_and_every_attempt(make_app: AppMaker) -> None:
    recorder = Recorder()
    b_answers = iter([failing(502), None])
    app, _ = make_app(
        handlers={
            "a": lambda request: FakeResponse(error=UpstreamTimeout("Upstream connection timed out", phase="connect")),
            "b": lambda request: next(b_answers) or answer(request),
        },
        plugins=[("observing", Observing(recorder))],
    )
    response = await post(app, HELLO)
    assert response.status == 200
    [record] = recorder.records
    assert (record.backend, record.upstream_model, record.fallbacks, record.retries) == ("b", "big-1", 1, 1)
    seen = [(a.backend, a.upstream_model, a.attempt, a.status, a.error) for a in recorder.attempts]
    assert seen == [
        ("a", "small", 1, None, "Upstream connection timed out"),
        ("b", "big-1", 1, 502, "Upstream error 502: boom"),
        ("b", "big-1", 2, 200, None),
    ]
    assert all(a.request_id == record.request_id for a in recorder.attempts)


async def test_an_upstream_failure_reaching_the_edge_is_mapped_once(make_app: AppMaker) -> None:
    async def stalls(request: Any) -> Any:
        raise UpstreamTimeout("Upstream did not answer in time", phase="status")

    class Route:
        @hookimpl
        def ccproxy_register_routes(self, register: Any) -> None:
            register("/stalls", stalls)

    app, _ = make_app(plugins=[("route", Route())])
    _, response = await app.asgi_client.get("/stalls")
    assert response.status == 504 and response.json["error"] == {
        "type": "timeout_error",
        "message": "Upstream did not answer in time",
    }


async def test_health_names_every_backends_provider(make_app: AppMaker) -> None:
    app, _ = make_app()
    _, response = await app.asgi_client.get("/")
    assert response.json["backends"] == {"a": "plain", "b": "plain", "c": "plain"}
