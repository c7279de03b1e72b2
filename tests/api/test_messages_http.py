"""HTTP behaviour of /v1/messages and friends, through sanic-testing against a scripted local upstream server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.core import implementation_name
from ccproxy.tokens import TokenCounter
from tests.api.conftest import API_KEY, make_settings, sdk_like
from tests.support.anthropic_stream import accumulate, check_stream
from tests.support.mock_upstream import MockUpstream

HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


def completion(text: str = "Hello!", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-5",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        **extra,
    }


def sse(*chunks: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE_CHUNK = {
    "id": "c",
    "object": "chat.completion.chunk",
    "choices": [],
    "usage": {"prompt_tokens": 20, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 8}},
}


def parse_sse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        assert lines[0].startswith("event: "), block
        assert lines[1].startswith("data: "), block
        event = json.loads(lines[1][len("data: ") :])
        assert event["type"] == lines[0][len("event: ") :]
        events.append(event)
    return events


def sent_body(upstream: MockUpstream) -> dict[str, Any]:
    [*_, last] = upstream.calls(upstream.chat_url)
    body: dict[str, Any] = last.json
    return body


async def post(app: CCProxyApp, body: Any, path: str = "/v1/messages", **kwargs: Any) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    _, response = await app.asgi_client.post(path, content=data, headers={"x-api-key": "client-key"}, **kwargs)
    return response


def assert_anthropic_error(response: Any, status: int, error_type: str) -> dict[str, Any]:
    assert response.status == status, response.text
    body = response.json
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert API_KEY not in response.text
    assert response.headers.get("request-id", "").startswith("req_")
    return body


async def test_non_stream_message(app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=completion())
    response = await post(app, HELLO)
    assert response.status == 200
    message = response.json
    assert message["id"].startswith("msg_")
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "claude-opus-4-8"
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 12 and message["usage"]["output_tokens"] == 3
    assert response.headers["request-id"].startswith("req_")
    body = sent_body(upstream)
    assert body["model"] == "gpt-5"
    assert body["max_completion_tokens"] == 100 and "max_tokens" not in body
    headers = upstream.requests[-1].headers
    assert "x-api-key" not in headers and "client-key" not in str(headers)
    assert headers["authorization"] == f"Bearer {API_KEY}"


async def test_beta_query_and_haiku_mapping(app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=completion())
    response = await post(app, {**HELLO, "model": "claude-haiku-4-5-20251001"}, "/v1/messages?beta=true")
    assert response.status == 200
    assert sent_body(upstream)["model"] == "gpt-4o-mini"
    assert sent_body(upstream)["max_tokens"] == 100


async def test_stream_message(app: CCProxyApp, upstream: MockUpstream) -> None:
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        USAGE_CHUNK,
    )
    upstream.post(upstream.chat_url, status=200, body=body, content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True})
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    events = parse_sse(response.text)
    check_stream(events)
    message = accumulate(events)
    assert message["content"] == [{"type": "text", "text": "Hello"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == 5
    assert message["usage"]["cache_read_input_tokens"] == 8
    assert message["usage"]["input_tokens"] == 12
    sent = sent_body(upstream)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_stream_tool_call(app: CCProxyApp, upstream: MockUpstream) -> None:
    body = sse(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "Bash", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"command":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"ls"}'}}]}),
        chunk({}, "tool_calls"),
        USAGE_CHUNK,
    )
    upstream.post(upstream.chat_url, status=200, body=body, content_type="text/event-stream")
    request = {**HELLO, "stream": True, "tools": [{"name": "Bash", "input_schema": {"type": "object"}}]}
    events = parse_sse((await post(app, request)).text)
    check_stream(events)
    message = accumulate(events)
    assert message["content"] == [{"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}}]
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_errors_are_mapped(
    app: CCProxyApp, upstream: MockUpstream, status: int, error_type: str, stream: bool
) -> None:
    upstream.post(
        upstream.chat_url,
        status=status,
        payload={"error": {"message": f"bad thing; key {API_KEY} rejected", "type": "x", "code": None}},
    )
    response = await post(app, {**HELLO, "stream": stream})
    expected_status = 400 if status == 422 else status
    body = assert_anthropic_error(response, expected_status, error_type)
    assert "bad thing" in body["error"]["message"]


async def test_rate_limit_passes_retry_after(app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(
        upstream.chat_url, status=429, payload={"error": {"message": "slow down"}}, headers={"Retry-After": "7"}
    )
    response = await post(app, HELLO)
    assert_anthropic_error(response, 429, "rate_limit_error")
    assert response.headers["retry-after"] == "7"


async def test_upstream_unreachable_and_timeout(upstream: MockUpstream) -> None:
    Sanic.test_mode = True
    # A short timeout keeps the test fast: the upstream holds the second request without ever answering.
    app = sdk_like(create_app(make_settings(base_url=upstream.base_url, request_timeout=0.3)))
    try:
        upstream.post(upstream.chat_url, exception=ConnectionResetError("dropped"))
        assert_anthropic_error(await post(app, HELLO), 502, "api_error")
        upstream.post(upstream.chat_url, exception=TimeoutError())
        assert_anthropic_error(await post(app, HELLO), 504, "timeout_error")
    finally:
        Sanic.unregister_app(app)


async def test_mid_stream_error_becomes_error_event(app: CCProxyApp, upstream: MockUpstream) -> None:
    body = sse(chunk({"content": "partial"}), {"error": {"code": 502, "message": "provider died"}})
    upstream.post(upstream.chat_url, status=200, body=body, content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True})
    assert response.status == 200
    events = parse_sse(response.text)
    assert events[0]["type"] == "message_start"
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "api_error"
    assert "provider died" in events[-1]["error"]["message"]
    # What was translated before the failure still reaches the client, ahead of the error.
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert deltas == ["partial"]


LLAMA_CPP_OVERFLOW = (
    'error: {"code":400,"message":"request (4476 tokens) exceeds the available context size (4096 tokens), try'
    ' increasing it","type":"exceed_context_size_error","n_prompt_tokens":4476,"n_ctx":4096}\n\ndata: [DONE]\n\n'
)


async def test_an_older_llama_cpp_error_field_is_the_clients_error(app: CCProxyApp, upstream: MockUpstream) -> None:
    """llama.cpp servers up to late 2025 put a failure inside a 200 stream in an `error:` field. It ends the stream
    with the error event a `data:` error would give (a context overflow in Anthropic's words), not with a stream that
    just stops; after content too."""
    upstream.post(upstream.chat_url, status=200, body=LLAMA_CPP_OVERFLOW, content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True})
    events = parse_sse(response.text)
    assert response.status == 200
    assert [event["type"] for event in events if event["type"] != "ping"] == ["message_start", "error"]
    assert events[-1]["error"] == {
        "type": "invalid_request_error",
        "message": "prompt is too long: 4476 tokens > 4096 maximum",
    }
    partial = f"data: {json.dumps(chunk({'content': 'partial'}))}\n\n"
    later = partial + 'error: {"code":500,"message":"slot crashed"}\n\ndata: [DONE]\n\n'
    upstream.post(upstream.chat_url, status=200, body=later, content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True})
    events = parse_sse(response.text)
    assert response.status == 200 and events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "api_error" and "slot crashed" in events[-1]["error"]["message"]
    assert [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"] == ["partial"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"model": "claude-opus-4-8", "messages": []}), "max_tokens"),
        (json.dumps({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}), "model"),
        (
            json.dumps({**HELLO, "messages": [{"role": "user", "content": [{"text": "no type"}]}]}),
            "messages.0.content.0.type",
        ),
    ],
)
async def test_bad_requests_get_400_naming_the_problem(app: CCProxyApp, raw: Any, fragment: str) -> None:
    body = assert_anthropic_error(await post(app, raw), 400, "invalid_request_error")
    assert fragment in body["error"]["message"]


async def test_server_tools_are_refused(app: CCProxyApp) -> None:
    request = {**HELLO, "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]}
    body = assert_anthropic_error(await post(app, request), 400, "invalid_request_error")
    assert "web_search" in body["error"]["message"]


async def test_tokenizer_loads_on_first_count_only(app: CCProxyApp, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []
    real_load = TokenCounter.load

    def counting_load() -> TokenCounter:
        loads.append(1)
        return real_load()

    monkeypatch.setattr(app.ctx.pipeline, "_load_tokens", counting_load)
    _, response = await app.asgi_client.get("/")
    assert response.status == 200 and loads == []  # idle: no tokenizer in memory
    body = {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]}
    results = await asyncio.gather(
        *(post(app, {**body, "system": str(i)}, "/v1/messages/count_tokens") for i in range(4))
    )
    assert all(r.status == 200 for r in results)
    assert loads == [1]


async def test_count_tokens(app: CCProxyApp) -> None:
    short = await post(
        app,
        {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]},
        "/v1/messages/count_tokens?beta=true",
    )
    longer = await post(
        app,
        {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi " * 200}]},
        "/v1/messages/count_tokens",
    )
    assert short.status == 200 and set(short.json) == {"input_tokens"}
    assert 0 < short.json["input_tokens"] < longer.json["input_tokens"]
    assert short.headers["request-id"].startswith("req_")
    again = await post(
        app,
        {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]},
        "/v1/messages/count_tokens",
    )
    assert again.json == short.json
    stats = await app.ctx.cache.stats()
    assert stats["hits"] >= 1


async def test_count_tokens_bad_body(app: CCProxyApp) -> None:
    body = assert_anthropic_error(
        await post(app, {"messages": []}, "/v1/messages/count_tokens"), 400, "invalid_request_error"
    )
    assert "model" in body["error"]["message"]


async def test_health_head_models_and_unknown(app: CCProxyApp) -> None:
    _, response = await app.asgi_client.get("/")
    assert response.status == 200 and response.json["status"] == "ok"
    assert response.json["core"] == implementation_name()
    assert response.headers["request-id"].startswith("req_")
    _, response = await app.asgi_client.head("/")
    assert response.status == 200
    _, response = await app.asgi_client.get("/v1/models")
    assert response.status == 200
    assert all(item["type"] == "model" for item in response.json["data"])
    _, response = await app.asgi_client.get("/v1/nothing-here")
    assert_anthropic_error(response, 404, "not_found_error")
    _, response = await app.asgi_client.get("/elsewhere")
    assert_anthropic_error(response, 404, "not_found_error")
    _, response = await app.asgi_client.get("/v1/messages")
    assert response.status == 405
    assert response.json["type"] == "error"


async def test_large_count_runs_off_the_event_loop(app: CCProxyApp, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    seen_threads: list[int] = []
    original = TokenCounter.count_request

    def recording(self: Any, body: Any) -> int:
        seen_threads.append(threading.get_ident())
        return original(self, body)

    monkeypatch.setattr(TokenCounter, "count_request", recording)
    loop_thread = threading.get_ident()
    small = {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]}
    large = {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "word " * 40_000}]}
    assert (await post(app, small, "/v1/messages/count_tokens")).status == 200
    response = await post(app, large, "/v1/messages/count_tokens")
    assert response.status == 200 and response.json["input_tokens"] > 30_000
    assert seen_threads[0] == loop_thread  # small bodies are cheaper to count in place
    assert seen_threads[1] != loop_thread  # a big one must not stall every other request
