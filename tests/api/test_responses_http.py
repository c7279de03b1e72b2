"""An `api = "responses"` OpenAI backend through the real app: what reaches `/responses` (checked by the fake
Responses server's rules), streams and JSON answers translated back, failures as the client's errors, and a second
turn that carries the first turn's encrypted reasoning back; upstreams are FakeUpstreams answering from the
openai plugin's Responses fixtures."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sanic import Sanic

from ccproxy import StreamContext, StreamFilter, hookimpl
from ccproxy.app import CCProxyApp, create_app
from ccproxy.config import parse_config
from ccproxy.settings import Settings
from ccproxy.upstream import UpstreamRequest
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from ccproxy_openai.responses_answer import SIGNATURE_PREFIX
from tests.api.conftest import sdk_like
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.backends import answer, swap_transports
from tests.support.openai_rules import OpenAIError
from tests.support.responses_rules import ResponsesValidator

FIXTURES = Path(__file__).resolve().parents[2] / "plugins" / "ccproxy-openai" / "tests" / "fixtures" / "responses"
TOML = """
[backends.oai]
provider = "openai"
base_url = "https://api.openai.com/v1"
api_key = "sk-responses-http-0123456789"
api = "responses"

[backends.auto]
provider = "openai"
base_url = "https://api.openai.com/v1"
api_key = "sk-responses-http-0123456789"
api = "auto"

[routes]
"claude-sonnet-*" = "oai:gpt-5.1"
"""
BASH = {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
ASK = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 32000,
    "thinking": {"type": "enabled", "budget_tokens": 10000},
    "tools": [BASH],
    "messages": [{"role": "user", "content": "Add and multiply."}],
}


class ResponsesUpstream:
    """Checks each body as api.openai.com would, then answers from a fixture (stream or JSON)."""

    def __init__(self, fixture: str, issued: set[str] | None = None) -> None:
        self.fixture = fixture
        self.validator = ResponsesValidator(issued or set())
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def __call__(self, request: UpstreamRequest) -> FakeResponse:
        body = json.loads(request.body)
        self.bodies.append(body)
        self.paths.append(request.path)
        try:
            self.validator.validate(body)
        except OpenAIError as exc:
            return FakeResponse.json(exc.body(), status=exc.status)
        raw = (FIXTURES / self.fixture).read_bytes()
        if self.fixture.endswith(".json"):
            return FakeResponse(200, {"content-type": "application/json"}, raw)
        middle = len(raw) // 2
        return FakeResponse(200, {"content-type": "text/event-stream"}, chunks=[raw[:middle], raw[middle:]])


@pytest.fixture
def apps() -> Iterator[list[CCProxyApp]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []
    yield made
    for app in made:
        Sanic.unregister_app(app)


def make_app(apps: list[CCProxyApp], plugins: list[tuple[str, object]] | None = None) -> CCProxyApp:
    file = parse_config(tomllib.loads(TOML), {})
    settings = Settings(backend_tables=file.backends, routes=tuple(file.routes.items()))
    app = sdk_like(create_app(settings, plugins=plugins or []))
    apps.append(app)
    return app


def serve(app: CCProxyApp, handler: Any) -> dict[str, FakeUpstream]:
    return swap_transports(app.ctx.backends, {"oai": handler, "auto": handler})


async def post(app: CCProxyApp, body: dict[str, Any]) -> Any:
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(body))
    return response


async def test_a_stream_goes_to_responses_and_comes_back_in_anthropic_events(apps: list[CCProxyApp]) -> None:
    app = make_app(apps)
    upstream = ResponsesUpstream("parallel_tools.sse")
    serve(app, upstream)
    response = await post(app, {**ASK, "stream": True})
    assert response.status == 200, response.text
    assert upstream.paths == ["/responses"]
    sent = upstream.bodies[0]
    assert sent["reasoning"]["summary"] == "auto" and sent["store"] is False
    assert sent["tools"][0]["name"] == "Bash" and sent["tools"][0]["strict"] is False
    events = parse_sse(response.content)
    check_stream(events)
    message = accumulate(events)
    assert [block["type"] for block in message["content"]] == ["thinking", "tool_use", "tool_use"]
    assert message["content"][0]["signature"].startswith(SIGNATURE_PREFIX)
    assert message["stop_reason"] == "tool_use" and message["usage"]["cache_read_input_tokens"] == 1920


async def test_a_json_answer(apps: list[CCProxyApp]) -> None:
    app = make_app(apps)
    serve(app, ResponsesUpstream("reasoning_tool.json"))
    response = await post(app, ASK)
    assert response.status == 200, response.text
    assert [block["type"] for block in response.json["content"]] == ["thinking", "text", "tool_use"]
    assert response.headers["x-ccproxy-upstream-model"] == "gpt-5.1"


async def test_a_stream_request_answered_with_json_is_replayed(apps: list[CCProxyApp]) -> None:
    app = make_app(apps)
    serve(app, ResponsesUpstream("reasoning_tool.json"))
    response = await post(app, {**ASK, "stream": True})
    events = parse_sse(response.content)
    check_stream(events)
    assert accumulate(events)["content"][2]["name"] == "Read"


async def test_the_encrypted_reasoning_of_one_turn_comes_back_in_the_next(apps: list[CCProxyApp]) -> None:
    app = make_app(apps)
    first = ResponsesUpstream("parallel_tools.sse")
    serve(app, first)
    turn = accumulate(parse_sse((await post(app, {**ASK, "stream": True})).content))
    results = [
        {"type": "tool_result", "tool_use_id": block["id"], "content": "5" if block["name"] == "add" else "20"}
        for block in turn["content"]
        if block["type"] == "tool_use"
    ]
    sealed = turn["content"][0]["signature"].removeprefix(SIGNATURE_PREFIX)
    second = ResponsesUpstream("reasoning_text.sse", issued={sealed})
    serve(app, second)
    history = [
        *ASK["messages"],
        {"role": "assistant", "content": turn["content"]},
        {"role": "user", "content": results},
    ]
    response = await post(app, {**ASK, "messages": history, "stream": True})
    assert response.status == 200, second.bodies
    items = second.bodies[0]["input"]
    assert [item.get("type", "message") for item in items] == [
        "message",
        "reasoning",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert items[1]["encrypted_content"] == sealed


async def test_reasoning_the_upstream_did_not_issue_is_its_400(apps: list[CCProxyApp]) -> None:
    app = make_app(apps)
    serve(app, ResponsesUpstream("reasoning_text.sse"))
    forged = {"type": "thinking", "thinking": "x", "signature": SIGNATURE_PREFIX + "forged"}
    history = [*ASK["messages"], {"role": "assistant", "content": [forged, {"type": "text", "text": "Hi"}]}]
    response = await post(app, {**ASK, "messages": [*history, {"role": "user", "content": "more"}]})
    assert response.status == 400
    assert response.json["error"]["type"] == "invalid_request_error"
    assert "could not be verified" in response.json["error"]["message"]


@pytest.mark.parametrize(
    ("fixture", "error_type"), [("failed.sse", "api_error"), ("error_event.sse", "rate_limit_error")]
)
async def test_a_failure_in_the_stream_is_an_error_event(apps: list[CCProxyApp], fixture: str, error_type: str) -> None:
    app = make_app(apps)
    serve(app, ResponsesUpstream(fixture))
    events = parse_sse((await post(app, {**ASK, "stream": True})).content)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == error_type


async def test_auto_chooses_responses_only_for_the_models_that_need_it(apps: list[CCProxyApp]) -> None:
    app = make_app(apps)
    fakes = serve(app, answer)
    for model in ("auto:gpt-5.1", "auto:gpt-4o"):
        await post(app, {**ASK, "model": model, "thinking": {"type": "disabled"}})
    assert [request.path for request in fakes["auto"].requests] == ["/responses", "/chat/completions"]


class Upper(StreamFilter):
    """Upper-cases text deltas: a filter puts the stream on the staged path."""

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if event["type"] == "content_block_delta" and delta["type"] == "text_delta":
            return [{**event, "delta": {**delta, "text": delta["text"].upper()}}]
        return [event]


class Filters:
    @hookimpl
    def ccproxy_register_stream_filters(self, register: Any) -> None:
        register(lambda context: Upper() if isinstance(context, StreamContext) else None)


async def test_stream_filters_see_the_translated_events(apps: list[CCProxyApp]) -> None:
    app = make_app(apps, plugins=[("filters", Filters())])
    serve(app, ResponsesUpstream("reasoning_text.sse"))
    events = parse_sse((await post(app, {**ASK, "stream": True})).content)
    check_stream(events)
    assert accumulate(events)["content"][1]["text"] == "GRÜSSE AUS KÖLN — 你好，世界! 👋"
