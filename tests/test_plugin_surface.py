"""Every hook, exercised through a real pluggy manager with a small test plugin, and wired into a real app."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pluggy
import pytest
from sanic import Request, Sanic
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from ccproxy import (
    LATER,
    Authenticator,
    AuthRequest,
    CacheBackend,
    Guardrail,
    GuardrailContext,
    Later,
    ModelCapabilities,
    Observer,
    Principal,
    Provider,
    ProxyError,
    ReasoningConfigurator,
    ReasoningRequest,
    RequestRecord,
    StreamContext,
    StreamFilter,
    hookimpl,
)
from ccproxy import hookspecs as hookspecs_module
from ccproxy import pipeline as pipeline_module
from ccproxy.app import AppState, CCProxyApp, build_state, create_app
from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.http.auth import answers_at_once
from ccproxy.http.observe import RequestWatch
from ccproxy.plugins import Registry, build_plugin_manager, collect, select_cache
from ccproxy.settings import Settings, SettingsError
from ccproxy.upstream import LeanUpstream
from tests.api.conftest import NOWHERE, sdk_like
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.mock_upstream import MockUpstream, mock_upstream

if TYPE_CHECKING:
    from ccproxy.core._relay_py import StreamPipeline

HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-5",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 2}},
}

# Hooks with a test below; `test_every_hook_has_a_test` compares this with the hookspecs.
TESTED_HOOKS: set[str] = set()
F = TypeVar("F", bound=Callable[..., Any])


def covers(*hooks: str) -> Callable[[F], F]:
    """Mark a test as exercising `hooks` (names must be real hooks)."""
    TESTED_HOOKS.update(hooks)
    return lambda test: test


def settings(**kwargs: Any) -> Settings:
    values: dict[str, Any] = {"api_key": "sk-test-0123456789", "base_url": NOWHERE, "big_model": "gpt-5"}
    return Settings(**{**values, **kwargs})


def registry_with(*plugins: tuple[str, object], **kwargs: Any) -> Registry:
    configured = settings(**kwargs)
    return collect(build_plugin_manager(configured, load_entry_points=False, plugins=plugins), configured)


@pytest.fixture
def make_app(upstream: MockUpstream) -> Iterator[Callable[..., CCProxyApp]]:
    """create_app with test plugins registered after the entry points; each app is unregistered afterwards."""
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(*plugins: tuple[str, object], **kwargs: Any) -> CCProxyApp:
        app = sdk_like(create_app(settings(**{"base_url": upstream.base_url, **kwargs}), plugins=plugins))
        made.append(app)
        return app

    yield build
    for app in made:
        Sanic.unregister_app(app)


@pytest.fixture
async def upstream() -> AsyncIterator[MockUpstream]:
    async with mock_upstream() as server:
        yield server


def sse_body(*texts: str, usage: bool = True) -> str:
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]} for text in texts
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage:
        chunks.append({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 5}})
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


async def post(app: CCProxyApp, body: Any, path: str = "/v1/messages", **headers: str) -> Any:
    _, response = await app.asgi_client.post(path, content=json.dumps(body), headers=headers)
    return response


def assert_error(response: Any, status: int, error_type: str) -> None:
    assert response.status == status, response.text
    assert response.json["type"] == "error"
    assert response.json["error"]["type"] == error_type


def test_every_hook_has_a_test() -> None:
    marker = f"{hookspecs_module.PROJECT_NAME}_spec"
    specs = {name for name, fn in inspect.getmembers(hookspecs_module, inspect.isfunction) if hasattr(fn, marker)}
    assert specs - TESTED_HOOKS == set(), "hooks without a test"
    assert TESTED_HOOKS - specs == set(), "tests claim hooks that do not exist"


# -- providers, cache backends, reasoning configurators, guardrails ------------------------------------------------


class FakeProvider(Provider):
    name: ClassVar[str] = "fake"

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities(supports_reasoning=True)


class RegistersFake:
    @hookimpl
    def ccproxy_register_providers(self, register: Any) -> None:
        register(FakeProvider)


@covers("ccproxy_register_providers")
def test_provider_is_registered_and_duplicates_name_both_plugins() -> None:
    assert registry_with(("fake-one", RegistersFake())).providers["fake"] is FakeProvider
    with pytest.raises(SettingsError, match="provider 'fake' is registered by two plugins") as error:
        registry_with(("fake-one", RegistersFake()), ("fake-2", RegistersFake()))
    assert "'fake-one'" in str(error.value) and "'fake-2'" in str(error.value)


@covers("ccproxy_register_providers")
async def test_a_registered_provider_serves_requests(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(("fake-one", RegistersFake()), provider="fake")
    upstream.post(upstream.chat_url, payload=COMPLETION)
    response = await post(app, HELLO)
    assert response.status == 200
    assert app.ctx.health["provider"] == "fake"


@covers("ccproxy_register_cache_backends")
def test_cache_backend_is_selectable_and_a_clash_with_a_built_in_names_both() -> None:
    class Disk:
        @hookimpl
        def ccproxy_register_cache_backends(self, register: Any) -> None:
            register("disk", lambda options: MemoryCacheBackend(max_entries=int(options.get("size", 5))))

    factory = select_cache(registry_with(("disk", Disk())), "disk")
    backend = factory({"size": 3})
    assert isinstance(backend, CacheBackend) and backend.max_entries == 3

    class Memory:
        @hookimpl
        def ccproxy_register_cache_backends(self, register: Any) -> None:
            register("memory", lambda options: MemoryCacheBackend())

    with pytest.raises(SettingsError, match="cache backend 'memory' is registered by two plugins") as error:
        registry_with(("my-memory", Memory()))
    assert "'ccproxy.memory_cache'" in str(error.value) and "'my-memory'" in str(error.value)


class HighReasoning(ReasoningConfigurator):
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.field = str(options.get("field", "reasoning_effort"))

    def configure(self, request: ReasoningRequest) -> dict[str, Any]:
        return {self.field: "high", "seen_model": request.upstream_model}


class RegistersHigh:
    @hookimpl
    def ccproxy_register_reasoning_configurators(self, register: Any) -> None:
        register("always-high", HighReasoning)


@covers("ccproxy_register_reasoning_configurators")
def test_reasoning_configurators_are_named_and_chosen_by_the_reasoning_table() -> None:
    registry = registry_with(("high", RegistersHigh()))
    assert set(registry.reasoning_configurators) == {"budget-effort", "always-high"}
    plugins = [("high", RegistersHigh())]
    state = build_state(settings(reasoning_options={"configurator": "always-high", "field": "effort"}), plugins=plugins)
    chosen = state.backends["default"].reasoning
    assert isinstance(chosen, HighReasoning) and chosen.field == "effort"
    with pytest.raises(
        SettingsError, match=r"reasoning.configurator: configurator 'nope' is not registered.*always-high"
    ):
        build_state(settings(reasoning_options={"configurator": "nope"}), plugins=plugins)


@covers("ccproxy_register_reasoning_configurators")
async def test_the_configured_reasoning_configurator_shapes_the_upstream_body(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(("high", RegistersHigh()), reasoning_options={"configurator": "always-high"})
    upstream.post(upstream.chat_url, payload=COMPLETION)
    assert (await post(app, HELLO)).status == 200
    [call] = upstream.requests
    sent = call.json
    assert sent["reasoning_effort"] == "high" and sent["seen_model"] == "gpt-5"


def test_disabling_the_built_in_reasoning_plugin_names_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"reasoning: configurator 'budget-effort' is not registered"):
        build_state(settings(disabled_plugins=("ccproxy.reasoning",)))


@covers("ccproxy_register_guardrails")
async def test_guardrail_gets_its_options_and_refuses(make_app: Callable[..., CCProxyApp]) -> None:
    class Deny(Guardrail):
        name: ClassVar[str] = "deny"

        def __init__(self, word: str) -> None:
            self.word = word

        async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
            if self.word in json.dumps(body["messages"]):
                raise ProxyError("refused", status=403)

    class Plugin:
        @hookimpl
        def ccproxy_register_guardrails(self, register: Any, options: Mapping[str, Any]) -> None:
            register(Deny(options["word"]))

    app = make_app(("deny", Plugin()), guardrail_options={"word": "hi"})
    assert [g.name for g in app.ctx.pipeline.guardrails] == ["deny"]
    assert_error(await post(app, HELLO), 403, "permission_error")


# -- stream filters ---------------------------------------------------------------------------------------------


class Upper(StreamFilter):
    """Upper-cases text deltas."""

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
            event["delta"]["text"] = event["delta"]["text"].upper()
        return [event]


class FilterPlugin:
    def __init__(self, make: Callable[[StreamContext], StreamFilter | None]) -> None:
        self.make = make
        self.contexts: list[StreamContext] = []
        self.options: Mapping[str, Any] | None = None

    @hookimpl
    def ccproxy_register_stream_filters(self, register: Any, options: Mapping[str, Any]) -> None:
        self.options = options

        def factory(context: StreamContext) -> StreamFilter | None:
            self.contexts.append(context)
            return self.make(context)

        register(factory)


@covers("ccproxy_register_stream_filters")
async def test_stream_filter_rewrites_streamed_text(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    plugin = FilterPlugin(lambda context: Upper())
    app = make_app(("upper", plugin), guardrail_options={"level": 1})
    upstream.post(upstream.chat_url, body=sse_body("Hello ", "world"), content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True})
    events = parse_sse(response.body)
    check_stream(events)
    assert accumulate(events)["content"] == [{"type": "text", "text": "HELLO WORLD"}]
    assert plugin.options == {"level": 1}
    [context] = plugin.contexts
    assert (context.client_model, context.upstream_model) == ("claude-opus-4-8", "gpt-5")
    assert context.request_id == response.headers["request-id"]


@covers("ccproxy_register_stream_filters")
async def test_filters_chain_in_order_and_flush_inside_the_message(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    class Notice(StreamFilter):
        """Adds a text block at flush: it must reach the client inside the message, before message_delta."""

        def __init__(self) -> None:
            self.blocks = 0

        def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
            self.blocks += event["type"] == "content_block_start"
            return [event]

        def flush(self) -> list[dict[str, Any]]:
            index = self.blocks
            return [
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": "!"}},
                {"type": "content_block_stop", "index": index},
            ]

    class Suffix(StreamFilter):
        def __init__(self, suffix: str) -> None:
            self.suffix = suffix

        def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
            if event["type"] == "content_block_delta":
                event["delta"]["text"] += self.suffix
            return [event]

    class Plugin:
        @hookimpl
        def ccproxy_register_stream_filters(self, register: Any) -> None:
            register(lambda context: Notice())
            register(lambda context: Suffix("1"))
            register(lambda context: Suffix("2"))

    app = make_app(("chain", Plugin()))
    upstream.post(upstream.chat_url, body=sse_body("a", "b"), content_type="text/event-stream")
    events = parse_sse((await post(app, {**HELLO, "stream": True})).body)
    check_stream(events)
    # Registration order; what Notice releases at flush passes the filters registered after it.
    assert accumulate(events)["content"] == [{"type": "text", "text": "a12b12"}, {"type": "text", "text": "!12"}]
    assert [event["type"] for event in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]


@covers("ccproxy_register_stream_filters")
async def test_a_filter_that_raises_ends_the_stream_with_an_error_event(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    class Block(StreamFilter):
        def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
            if event["type"] == "content_block_delta" and "secret" in event["delta"]["text"]:
                raise ProxyError("answer blocked by policy", status=400)
            return [event]

    app = make_app(("block", FilterPlugin(lambda c: Block())))
    upstream.post(upstream.chat_url, body=sse_body("fine ", "secret"), content_type="text/event-stream")
    events = parse_sse((await post(app, {**HELLO, "stream": True})).body)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "answer blocked by policy"},
    }
    assert "secret" not in json.dumps(events)


@covers("ccproxy_register_stream_filters")
async def test_factories_that_decline_keep_the_fused_fast_path(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = FilterPlugin(lambda context: None)
    app = make_app(("none", plugin))
    relays: list[StreamPipeline] = []
    build = pipeline_module.StreamRelay  # the pipeline class of the core this app runs

    def spy(*args: Any, **kwargs: Any) -> StreamPipeline:
        relays.append(build(*args, **kwargs))
        return relays[-1]

    monkeypatch.setattr(pipeline_module, "StreamRelay", spy)
    upstream.post(upstream.chat_url, body=sse_body("Hello"), content_type="text/event-stream")
    events = parse_sse((await post(app, {**HELLO, "stream": True})).body)
    assert accumulate(events)["content"] == [{"type": "text", "text": "Hello"}]
    assert len(plugin.contexts) == 1 and [relay.fused for relay in relays] == [True]


def test_without_filters_the_pipeline_uses_the_bare_translator(make_app: Callable[..., CCProxyApp]) -> None:
    app = make_app()
    assert app.ctx.pipeline.stream_filters is None
    prepared, sent = _prepared(app)
    assert app.ctx.pipeline._stream_filters(prepared, sent) == []  # the fused fast path
    with_filter = make_app(("upper", FilterPlugin(lambda c: Upper())))
    assert [type(made) for made in with_filter.ctx.pipeline._stream_filters(prepared, sent)] == [Upper]


def _prepared(app: CCProxyApp) -> tuple[Any, Any]:
    from ccproxy.core.plan import ResponseContext
    from ccproxy.core.toolnames import ToolNameMap
    from ccproxy.pipeline import Prepared, Sent, served_headers
    from ccproxy.routing import Route, Target
    from ccproxy.upstream.fake import FakeUpstreamResponse

    target = Target("default", "gpt-5")
    guard = GuardrailContext(request_id="req_1", headers={})
    prepared = Prepared({"model": "m"}, True, Route((target,)), guard, "msg_1", 1)
    context = ResponseContext(message_id="msg_1", model="m", input_tokens_estimate=1, tool_names=ToolNameMap())
    response = FakeUpstreamResponse(200, {}, [], asyncio.sleep)
    return prepared, Sent(target, response, context, served_headers(target))


@covers("ccproxy_register_stream_filters")
async def test_non_stream_answers_are_not_filtered(make_app: Callable[..., CCProxyApp], upstream: MockUpstream) -> None:
    plugin = FilterPlugin(lambda context: Upper())
    app = make_app(("upper", plugin))
    upstream.post(upstream.chat_url, payload=COMPLETION)
    response = await post(app, HELLO)
    assert response.json["content"] == [{"type": "text", "text": "Hello!"}]
    assert plugin.contexts == []


# -- observers --------------------------------------------------------------------------------------------------


class Recorder(Observer):
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def request_done(self, record: RequestRecord) -> None:
        self.records.append(record)


class ObserverPlugin:
    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    @hookimpl
    def ccproxy_register_observers(self, register: Any) -> None:
        for observer in self.observers:
            register(observer)


@covers("ccproxy_register_observers")
async def test_observer_gets_one_record_per_non_stream_request(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    recorder = Recorder()
    app = make_app(("rec", ObserverPlugin(recorder)))
    upstream.post(upstream.chat_url, payload=COMPLETION)
    response = await post(app, HELLO)
    assert response.status == 200
    [record] = recorder.records
    assert record.request_id == response.headers["request-id"]
    assert (record.client_model, record.upstream_model, record.endpoint) == ("claude-opus-4-8", "gpt-5", "messages")
    assert (record.status, record.error_type, record.stream) == (200, None, False)
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens) == (10, 3, 2)
    assert record.ttft_ms is None and record.total_ms > 0 and record.key_id is None


@covers("ccproxy_register_observers")
async def test_observer_sees_stream_usage_and_time_to_first_token(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    recorder = Recorder()
    app = make_app(("rec", ObserverPlugin(recorder)))
    upstream.post(upstream.chat_url, body=sse_body("Hel", "lo"), content_type="text/event-stream")
    events = parse_sse((await post(app, {**HELLO, "stream": True})).body)
    check_stream(events)
    [record] = recorder.records
    assert record.stream and record.status == 200 and record.error_type is None
    assert (record.input_tokens, record.output_tokens) == (20, 5)
    assert record.ttft_ms is not None and 0 < record.ttft_ms <= record.total_ms


@covers("ccproxy_register_observers")
async def test_observer_sees_failures_with_their_status_and_type(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    recorder = Recorder()
    app = make_app(("rec", ObserverPlugin(recorder)))
    upstream.post(upstream.chat_url, status=429, payload={"error": {"message": "slow down"}})
    assert_error(await post(app, HELLO), 429, "rate_limit_error")
    assert_error(await post(app, {"model": "claude-opus-4-8"}), 400, "invalid_request_error")
    limited, invalid = recorder.records
    assert (limited.status, limited.error_type, limited.upstream_model) == (429, "rate_limit_error", "gpt-5")
    assert (invalid.status, invalid.error_type, invalid.client_model) == (400, "invalid_request_error", "")


@covers("ccproxy_register_observers")
async def test_observer_sees_a_stream_that_ends_in_an_error_event(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    recorder = Recorder()
    app = make_app(("rec", ObserverPlugin(recorder)))
    chunks = [{"choices": [{"index": 0, "delta": {"content": "partial"}}]}, {"error": {"message": "overloaded"}}]
    body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks)
    upstream.post(upstream.chat_url, body=body, content_type="text/event-stream")
    events = parse_sse((await post(app, {**HELLO, "stream": True})).body)
    assert events[-1]["type"] == "error"
    [record] = recorder.records
    assert (record.status, record.stream) == (200, True)
    assert record.error_type == events[-1]["error"]["type"]


@covers("ccproxy_register_observers")
async def test_observer_gets_count_tokens_records(make_app: Callable[..., CCProxyApp]) -> None:
    recorder = Recorder()
    app = make_app(("rec", ObserverPlugin(recorder)))
    response = await post(
        app, {"model": "claude-haiku-4-5", "messages": HELLO["messages"]}, "/v1/messages/count_tokens"
    )
    assert response.status == 200
    [record] = recorder.records
    assert (record.endpoint, record.client_model, record.status) == ("count_tokens", "claude-haiku-4-5", 200)
    assert record.input_tokens == 0  # nothing was generated: a count is not usage


@covers("ccproxy_register_observers")
async def test_a_failing_observer_does_not_fail_the_request(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Observer):
        def request_done(self, record: RequestRecord) -> None:
            raise RuntimeError("observer bug")

    recorder = Recorder()
    app = make_app(("rec", ObserverPlugin(Broken(), recorder)))
    logging.getLogger("ccproxy").addHandler(caplog.handler)  # the app's logger does not propagate
    upstream.post(upstream.chat_url, payload=COMPLETION)
    assert (await post(app, HELLO)).status == 200
    assert len(recorder.records) == 1
    assert "observer Broken failed in request_done" in caplog.text


@covers("ccproxy_register_observers")
async def test_a_client_that_goes_away_is_recorded(make_app: Callable[..., CCProxyApp]) -> None:
    recorder = Recorder()
    app = make_app(("rec", ObserverPlugin(recorder)))
    assert app.ctx.observers is not None
    request: Any = SimpleNamespace(ctx=SimpleNamespace(request_id="req_gone"))  # a stand-in: only ctx is read

    observers = app.ctx.observers
    with pytest.raises(asyncio.CancelledError), RequestWatch(observers, request, "messages"):
        raise asyncio.CancelledError  # before any answer
    with pytest.raises(asyncio.CancelledError), RequestWatch(observers, request, "messages") as watch:
        watch.streaming()  # the handler began the stream's response
        raise asyncio.CancelledError  # cancelled mid-stream
    before, during = recorder.records
    assert (before.status, before.error_type, before.request_id) == (499, "client_disconnected", "req_gone")
    assert (during.status, during.error_type) == (200, "client_disconnected")


async def test_without_observers_no_record_is_built(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(disabled_plugins=("ccproxy.usage", "ccproxy.metrics"))  # the built-in observers
    assert app.ctx.observers is None

    def forbidden(*args: Any) -> None:
        raise AssertionError("a record was built without observers")

    monkeypatch.setattr("ccproxy.http.handlers.RequestWatch", forbidden)
    upstream.post(upstream.chat_url, payload=COMPLETION)
    upstream.post(upstream.chat_url, body=sse_body("Hi"), content_type="text/event-stream")
    assert (await post(app, HELLO)).status == 200
    assert (await post(app, {**HELLO, "stream": True})).status == 200
    assert (await post(app, HELLO, "/v1/messages/count_tokens")).status == 200


# -- authenticators ---------------------------------------------------------------------------------------------


class KeyAuth(Authenticator):
    def __init__(self, key: str, key_id: str) -> None:
        self.key, self.key_id = key, key_id
        self.seen: list[AuthRequest] = []

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        self.seen.append(request)
        if request.headers.get("x-api-key") == self.key:
            return Principal(key_id=self.key_id, name="team", models=("claude-*",))
        return None


class AuthPlugin:
    def __init__(self, *authenticators: Authenticator) -> None:
        self.authenticators = authenticators

    @hookimpl
    def ccproxy_register_authenticators(self, register: Any) -> None:
        for authenticator in self.authenticators:
            register(authenticator)


async def whoami(request: Request) -> HTTPResponse:
    principal = getattr(request.ctx, "principal", None)
    return json_response({"key_id": principal.key_id if principal else None})


class RoutePlugin:
    def __init__(self, *routes: tuple[Any, ...]) -> None:
        self.routes = routes

    @hookimpl
    def ccproxy_register_routes(self, register: Any) -> None:
        for route in self.routes:
            register(*route)


@covers("ccproxy_register_authenticators")
async def test_v1_requests_without_a_principal_get_401(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    app = make_app(("auth", AuthPlugin(KeyAuth("good", "k1"))))
    # Not hex: a random request id must not be able to contain the key by chance.
    response = await post(app, HELLO, **{"x-api-key": "wrong-key-xyz"})
    assert_error(response, 401, "authentication_error")
    assert "request-id" in response.headers and "wrong-key-xyz" not in response.text
    _, models = await app.asgi_client.get("/v1/models")
    assert_error(models, 401, "authentication_error")
    _, unknown = await app.asgi_client.get("/v1/nothing-here")
    assert_error(unknown, 401, "authentication_error")
    upstream.post(upstream.chat_url, payload=COMPLETION)
    assert (await post(app, HELLO, **{"x-api-key": "good"})).status == 200


@covers("ccproxy_register_authenticators")
async def test_health_stays_open_with_authenticators(make_app: Callable[..., CCProxyApp]) -> None:
    auth = KeyAuth("good", "k1")
    app = make_app(("auth", AuthPlugin(auth)))
    _, health = await app.asgi_client.get("/")
    _, head = await app.asgi_client.head("/")
    assert health.status == 200 and head.status == 200
    assert auth.seen == []


@covers("ccproxy_register_authenticators", "ccproxy_register_routes")
async def test_authenticators_are_asked_in_order_and_the_principal_reaches_handlers(
    make_app: Callable[..., CCProxyApp],
) -> None:
    first, second = KeyAuth("one", "k1"), KeyAuth("two", "k2")
    app = make_app(("auth", AuthPlugin(first, second)), ("routes", RoutePlugin(("/v1/whoami", whoami))))
    _, response = await app.asgi_client.get("/v1/whoami", headers={"x-api-key": "two", "X-Custom": "Yes"})
    assert response.json == {"key_id": "k2"}
    seen = second.seen[0]
    assert (seen.method, seen.path, seen.headers["x-custom"]) == ("GET", "/v1/whoami", "Yes")
    assert seen.remote_addr == "mockserver"  # the test client's address
    assert len(first.seen) == 1


@covers("ccproxy_register_authenticators")
async def test_an_authenticator_may_refuse_with_its_own_status(make_app: Callable[..., CCProxyApp]) -> None:
    class OverBudget(Authenticator):
        async def authenticate(self, request: AuthRequest) -> Principal | None:
            raise ProxyError("budget exhausted", status=429, headers={"retry-after": "60"})

    app = make_app(("auth", AuthPlugin(OverBudget())))
    response = await post(app, HELLO)
    assert_error(response, 429, "rate_limit_error")
    assert response.headers["retry-after"] == "60"


class AtOnce(Authenticator):
    """Answers from `authenticate_now`: a Principal for its key, LATER for `later` (then `authenticate` answers),
    and raises for `refuse`."""

    def __init__(self, key: str, key_id: str) -> None:
        self.key, self.key_id = key, key_id
        self.asked_now = self.awaited = 0

    def authenticate_now(self, request: AuthRequest) -> Principal | Later | None:
        self.asked_now += 1
        presented = request.headers.get("x-api-key")
        if presented == "refuse":
            raise ProxyError("not today", status=403)
        if presented == "later":
            return LATER
        return Principal(key_id=self.key_id) if presented == self.key else None

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        self.awaited += 1
        return Principal(key_id=self.key_id + "-awaited") if request.headers.get("x-api-key") == "later" else None


@covers("ccproxy_register_authenticators", "ccproxy_register_routes")
async def test_an_authenticator_may_answer_at_once_or_later(make_app: Callable[..., CCProxyApp]) -> None:
    at_once, awaited = AtOnce("now", "k-now"), KeyAuth("plain", "k-plain")
    app = make_app(("auth", AuthPlugin(at_once, awaited)), ("routes", RoutePlugin(("/v1/whoami", whoami))))

    async def whoami_with(key: str) -> Any:
        _, response = await app.asgi_client.get("/v1/whoami", headers={"x-api-key": key})
        return response

    assert (await whoami_with("now")).json == {"key_id": "k-now"}
    assert (at_once.asked_now, at_once.awaited, len(awaited.seen)) == (1, 0, 0)  # its authenticate never awaited
    assert (await whoami_with("plain")).json == {"key_id": "k-plain"}  # None at once: the next one is asked
    assert (at_once.asked_now, at_once.awaited, len(awaited.seen)) == (2, 0, 1)
    assert (await whoami_with("later")).json == {"key_id": "k-now-awaited"}  # LATER: its own authenticate answers
    assert (at_once.asked_now, at_once.awaited, len(awaited.seen)) == (3, 1, 1)
    assert_error(await whoami_with("refuse"), 403, "permission_error")
    assert_error(await whoami_with("nobody"), 401, "authentication_error")
    assert (at_once.asked_now, at_once.awaited, len(awaited.seen)) == (5, 1, 2)


def test_the_base_authenticator_answers_later() -> None:
    assert KeyAuth("k", "k").authenticate_now(AuthRequest("GET", "/v1/models", {}, "127.0.0.1")) is LATER


def test_a_subclass_that_overrides_authenticate_is_awaited() -> None:
    class Logged(AtOnce):  # adds to authenticate only: its answer at once would skip what it adds
        async def authenticate(self, request: AuthRequest) -> Principal | None:
            return await super().authenticate(request)

    class Both(Logged):  # overrides both again: its own answer at once speaks for it
        def authenticate_now(self, request: AuthRequest) -> Principal | Later | None:
            return None

    assert answers_at_once(AtOnce("k", "k")) and answers_at_once(Both("k", "k"))
    assert not answers_at_once(Logged("k", "k")) and not answers_at_once(KeyAuth("k", "k"))
    patched = AtOnce("k", "k")
    patched.authenticate = Logged("k", "k").authenticate  # type: ignore[method-assign]  # on the instance
    assert not answers_at_once(patched)


@covers("ccproxy_register_authenticators")
async def test_a_duck_typed_authenticator_is_awaited(make_app: Callable[..., CCProxyApp]) -> None:
    class Duck:  # registered without the base class: no authenticate_now at all
        async def authenticate(self, request: AuthRequest) -> Principal | None:
            return Principal(key_id="duck") if request.headers.get("x-api-key") == "quack" else None

    app = make_app(("auth", AuthPlugin(Duck())), ("routes", RoutePlugin(("/v1/whoami", whoami))))  # type: ignore[arg-type]
    _, response = await app.asgi_client.get("/v1/whoami", headers={"x-api-key": "quack"})
    assert response.json == {"key_id": "duck"}


def test_an_async_authenticate_now_stops_start_up(make_app: Callable[..., CCProxyApp]) -> None:
    class AsyncNow(AtOnce):
        async def authenticate_now(self, request: AuthRequest) -> Principal | Later | None:  # type: ignore[override]
            return None

    with pytest.raises(SettingsError, match="AsyncNow: authenticate_now must be a plain function"):
        make_app(("auth", AuthPlugin(AsyncNow("k", "k"))))


@covers("ccproxy_register_authenticators", "ccproxy_register_observers")
async def test_the_principal_key_id_is_in_the_request_record(
    make_app: Callable[..., CCProxyApp], upstream: MockUpstream
) -> None:
    recorder = Recorder()
    app = make_app(("auth", AuthPlugin(KeyAuth("good", "team-a"))), ("rec", ObserverPlugin(recorder)))
    upstream.post(upstream.chat_url, payload=COMPLETION)
    assert (await post(app, HELLO, **{"x-api-key": "good"})).status == 200
    assert recorder.records[0].key_id == "team-a"


def test_without_authenticators_no_authentication_runs(make_app: Callable[..., CCProxyApp]) -> None:
    """One request middleware either way (Sanic's dispatch of each costs): the edge check alone without an
    authenticator, the edge check and the authentication together with one."""
    plain, guarded = make_app(), make_app(("auth", AuthPlugin(KeyAuth("k", "k"))))
    plain_names = [getattr(m, "func", m).__name__ for m in plain.request_middleware]
    guarded_names = [getattr(m, "func", m).__name__ for m in guarded.request_middleware]
    assert plain_names == ["check_request"]
    assert guarded_names == ["check_and_authenticate"]


# -- routes -----------------------------------------------------------------------------------------------------


@covers("ccproxy_register_routes")
async def test_plugin_routes_are_served_outside_and_inside_v1(make_app: Callable[..., CCProxyApp]) -> None:
    async def metrics(request: Request) -> HTTPResponse:
        return json_response({"requests": 0})

    async def failing(request: Request) -> HTTPResponse:
        raise ProxyError("cache is off", status=404)

    plugin = RoutePlugin(
        ("/stats", metrics),
        ("/v1/whoami", whoami, ("GET", "post")),
        ("/v1/cache", failing),
        ("/whoami", whoami),  # the same handler again: Sanic's route names must still differ
        ("/me", whoami, ("GET",), "me"),
    )
    app = make_app(("routes", plugin))
    _, response = await app.asgi_client.get("/whoami")
    _, named = await app.asgi_client.get("/me")
    assert response.json == named.json == {"key_id": None}
    _, response = await app.asgi_client.get("/stats")
    assert response.json == {"requests": 0}
    _, response = await app.asgi_client.post("/v1/whoami")
    assert response.json == {"key_id": None}
    _, response = await app.asgi_client.get("/v1/cache")
    assert_error(response, 404, "not_found_error")


@covers("ccproxy_register_routes")
def test_a_route_clashing_with_a_built_in_stops_start_up(make_app: Callable[..., CCProxyApp]) -> None:
    with pytest.raises(SettingsError, match=r"plugin 'routes': route POST /v1/messages is already served by ccproxy"):
        make_app(("routes", RoutePlugin(("/v1/messages", whoami, ("POST",)))))
    with pytest.raises(SettingsError, match=r"route GET / is already served"):
        make_app(("routes", RoutePlugin(("/", whoami))))


@covers("ccproxy_register_routes")
def test_the_same_route_from_two_plugins_names_both() -> None:
    with pytest.raises(SettingsError, match=r"route 'GET /stats' is registered by two plugins") as error:
        registry_with(("one", RoutePlugin(("/stats", whoami))), ("two", RoutePlugin(("/stats", whoami))))
    assert "'one'" in str(error.value) and "'two'" in str(error.value)
    with pytest.raises(SettingsError, match=r"route 'POST /x' is registered twice by plugin 'one'"):
        registry_with(("one", RoutePlugin(("/x", whoami, ("POST",)), ("/x", whoami, ("post",)))))
    with pytest.raises(SettingsError, match=r"route /b: the name 'plugin_one_me' is taken"):
        registry_with(("one", RoutePlugin(("/a", whoami, ("GET",), "me"), ("/b", whoami, ("GET",), "me"))))
    with pytest.raises(SettingsError, match=r"must start with '/'"):
        registry_with(("bad", RoutePlugin(("metrics", whoami))))
    with pytest.raises(SettingsError, match=r"unknown HTTP method"):
        registry_with(("bad", RoutePlugin(("/stats", whoami, ("FETCH",)))))


# -- startup / shutdown -----------------------------------------------------------------------------------------


def _transport_open(state: AppState) -> bool:
    """Whether backend `default`'s transport is open: a private peek, for these tests — the lean client's pools
    (the default), or aiohttp's session."""
    transport = state.backends["default"].transport
    if isinstance(transport, LeanUpstream):
        return getattr(transport, "_pools") is not None  # noqa: B009 — a private peek, for this test
    session = getattr(transport, "_session")  # noqa: B009 — a private peek, for this test
    return session is not None and not session.closed


class Lifecycle:
    """Records when its hooks ran and whether the upstream session was open at that moment."""

    def __init__(self, name: str, log: list[str], *, asynchronous: bool) -> None:
        self.name, self.log, self.asynchronous = name, log, asynchronous

    def _note(self, what: str, state: AppState) -> None:
        self.log.append(f"{self.name}:{what}:{'open' if _transport_open(state) else 'closed'}")

    @hookimpl
    def ccproxy_startup(self, state: AppState) -> Any:
        return self._run("start", state)

    @hookimpl
    def ccproxy_shutdown(self, state: AppState) -> Any:
        return self._run("stop", state)

    def _run(self, what: str, state: AppState) -> Any:
        if not self.asynchronous:
            self._note(what, state)
            return None

        async def later() -> None:
            self._note(what, state)

        return later()


@covers("ccproxy_startup", "ccproxy_shutdown")
async def test_lifecycle_hooks_run_in_order_with_the_transport_open(make_app: Callable[..., CCProxyApp]) -> None:
    log: list[str] = []
    app = make_app(("a", Lifecycle("a", log, asynchronous=True)), ("b", Lifecycle("b", log, asynchronous=False)))
    _, response = await app.asgi_client.get("/")  # the ASGI client runs server start and stop around a request
    assert response.status == 200
    # Last registered first (pluggy's order); "a"'s coroutine was awaited before "b" was called at shutdown too.
    assert log == ["b:start:open", "a:start:open", "b:stop:open", "a:stop:open"]
    assert not _transport_open(app.ctx)  # closed after the shutdown hooks


@covers("ccproxy_startup")
async def test_a_module_plugin_with_an_async_startup_gets_the_app_state(make_app: Callable[..., CCProxyApp]) -> None:
    seen: list[AppState] = []

    class Plugin:
        @hookimpl
        async def ccproxy_startup(self, state: AppState) -> None:
            seen.append(state)

    app = make_app(("p", Plugin()))
    await app.asgi_client.get("/")
    assert seen == [app.ctx]


@covers("ccproxy_shutdown")
async def test_a_failing_shutdown_is_logged_and_the_others_still_run(
    make_app: Callable[..., CCProxyApp], caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []

    class Broken:
        @hookimpl
        async def ccproxy_shutdown(self, state: AppState) -> None:
            raise RuntimeError("cannot close")

    app = make_app(("ok", Lifecycle("ok", log, asynchronous=True)), ("broken", Broken()))
    logging.getLogger("ccproxy").addHandler(caplog.handler)  # the app's logger does not propagate
    await app.asgi_client.get("/")
    assert log == ["ok:start:open", "ok:stop:open"]
    assert "plugin 'broken' failed in ccproxy_shutdown" in caplog.text
    assert not _transport_open(app.ctx)


@covers("ccproxy_register_routes")
def test_ccproxy_serve_reports_a_route_clash_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    from ccproxy import cli

    load_entry_points = pluggy.PluginManager.load_setuptools_entrypoints

    def load_clashing(self: pluggy.PluginManager, group: str, name: str | None = None) -> int:
        # The installed entry points (the openai provider) and, as if installed too, a plugin with a clashing route.
        self.register(RoutePlugin(("/v1/models", whoami)), name="clash")
        return load_entry_points(self, group, name) + 1

    monkeypatch.setattr("pluggy.PluginManager.load_setuptools_entrypoints", load_clashing)
    monkeypatch.setattr(cli, "serve", lambda *args: pytest.fail("serve must not start"))
    Sanic.test_mode = True
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.delenv("CCPROXY_CONFIG", raising=False)
    env_file = tmp_path / "none.env"
    with socket.socket() as probe:  # a free port, so the port check passes and the app is built
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = cli.main(["serve", "--port", str(port), "--env-file", str(env_file)])
    assert status == cli.EXIT_CONFIG_ERROR
    err = capsys.readouterr().err.strip()
    assert err == "ccproxy: configuration error: plugin 'clash': route GET /v1/models is already served by ccproxy"
