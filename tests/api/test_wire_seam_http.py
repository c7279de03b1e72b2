"""The wire seam (ccproxy/wire.py) with the smallest third-party wire: a provider whose models ending in `-echo`
speak an invented API. The pipeline posts the wire's body to the wire's path, skips `adjust_request`, reads JSON
answers and streams with the wire's conversions; every other model stays on Chat Completions."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from sanic import Sanic

from ccproxy import ModelCapabilities, Provider, UpstreamError, hookimpl
from ccproxy.app import CCProxyApp, create_app
from ccproxy.config import parse_config
from ccproxy.settings import Settings
from ccproxy.upstream import UpstreamRequest
from ccproxy.upstream.fake import FakeResponse
from ccproxy.wire import Event, RequestPlan, ResponseContext, Wire, WireStreamTranslator, chat_completions_request
from tests.api.conftest import sdk_like
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.backends import answer, swap_transports

HELLO = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


class EchoTranslator(WireStreamTranslator):
    """`{"say": text}` chunks -> one text block; `{"end": true}` ends the answer."""

    def __init__(self, ctx: ResponseContext) -> None:
        super().__init__(ctx)
        self.opened = False

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self.done:
            return []
        events = self.start()
        if "say" in chunk:
            if not self.opened:
                self.opened = True
                events.append(
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
                )
            events.append(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": chunk["say"]}}
            )
        if chunk.get("end"):
            events.append({"type": "content_block_stop", "index": 0})
            usage = {"input_tokens": 1, "output_tokens": 2}
            events.append({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage})
            events.append({"type": "message_stop"})
            self.finished()
        return events

    def complete(self) -> list[Event]:
        raise UpstreamError("the echo stream was cut", status=502)


class EchoWire(Wire):
    path: ClassVar[str] = "/echo"

    def convert_request(self, body: dict[str, Any], plan: RequestPlan) -> dict[str, Any]:
        chat = chat_completions_request(body, plan)
        return {"echo_model": chat["model"], "words": [message["content"] for message in chat["messages"]]}

    def convert_response(self, answer: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
        text = {"type": "text", "text": answer["said"]}
        usage = {"input_tokens": 1, "output_tokens": 2}
        return {"id": ctx.message_id, "type": "message", "role": "assistant", "model": ctx.model, "content": [text],
                "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}  # fmt: skip

    def stream_translator(self, ctx: ResponseContext) -> EchoTranslator:
        return EchoTranslator(ctx)


class EchoProvider(Provider):
    name: ClassVar[str] = "echoing"
    needs_key: ClassVar[bool] = False
    adjusted = 0

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities()

    def adjust_request(self, body: dict[str, Any], anthropic_request: Any) -> dict[str, Any]:
        EchoProvider.adjusted += 1
        return body

    def wire(self, model: str) -> Wire | None:
        return EchoWire() if model.endswith("-echo") else None


class Plugin:
    @hookimpl
    def ccproxy_register_providers(self, register: Any) -> None:
        register(EchoProvider)


def echo_upstream(request: UpstreamRequest) -> FakeResponse:
    if request.path != "/echo":
        return answer(request)
    said = " ".join(json.loads(request.body)["words"])
    if not request.stream:
        return FakeResponse.json({"said": said})
    chunks = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in ({"say": said}, {"say": "!"}, {"end": True})]
    return FakeResponse(200, {"content-type": "text/event-stream"}, chunks=chunks)


@pytest.fixture
def app() -> Iterator[CCProxyApp]:
    Sanic.test_mode = True
    toml = '[backends.e]\nprovider = "echoing"\nbase_url = "http://127.0.0.1:9/v1"\n[routes]\n"*" = "e:m-echo"\n'
    file = parse_config(tomllib.loads(toml), {})
    settings = Settings(backend_tables=file.backends, routes=tuple(file.routes.items()))
    application = sdk_like(create_app(settings, plugins=[("echo", Plugin())]))
    yield application
    Sanic.unregister_app(application)


async def post(app: CCProxyApp, body: dict[str, Any]) -> Any:
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(body))
    return response


async def test_a_wire_model_goes_through_the_wire(app: CCProxyApp) -> None:
    fakes = swap_transports(app.ctx.backends, {"e": echo_upstream})
    EchoProvider.adjusted = 0
    response = await post(app, HELLO)
    assert response.status == 200 and response.json["content"] == [{"type": "text", "text": "hi"}]
    streamed = await post(app, {**HELLO, "stream": True})
    events = parse_sse(streamed.content)
    check_stream(events)
    assert accumulate(events)["content"] == [{"type": "text", "text": "hi!"}]
    assert [request.path for request in fakes["e"].requests] == ["/echo", "/echo"]
    assert json.loads(fakes["e"].requests[0].body) == {"echo_model": "m-echo", "words": ["hi"]}
    assert EchoProvider.adjusted == 0


async def test_other_models_stay_on_chat_completions(app: CCProxyApp) -> None:
    fakes = swap_transports(app.ctx.backends, {"e": echo_upstream})
    EchoProvider.adjusted = 0
    response = await post(app, {**HELLO, "model": "e:plain"})
    assert response.status == 200 and response.json["content"][0]["text"] == "Hello!"
    assert [request.path for request in fakes["e"].requests] == ["/chat/completions"]
    assert EchoProvider.adjusted == 1
