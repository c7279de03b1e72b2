"""Upstream answers that are not what was asked for, through the real app with the upstream mocked (issue 6 items
3, 9 and 10): a JSON completion or error for a stream request, HTML, text, empty and cut bodies, broken tool
arguments and malformed completions. The client always gets a well-formed answer or an Anthropic error, never a
500, and never a cut answer that looks complete — on both transports (aiohttp and the lean client), answered by
the same real local server (tests/support/mock_upstream.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from tests.api.conftest import API_KEY, make_settings, sdk_like
from tests.support.anthropic_message import check_message
from tests.support.anthropic_stream import StreamGrammarError, accumulate, check_stream, parse_sse
from tests.support.mock_upstream import MockUpstream
from tests.support.upstream_strategies import completions, upstream_streams

HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**HELLO, "stream": True}
TOOLS = [{"name": "Bash", "input_schema": {"type": "object"}}]
CUT_MESSAGE = "Upstream stream ended before the answer was complete"

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "reasoning_content": "Think.",
                "content": "Paris.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"ls"}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3},
}


@pytest.fixture(params=["aiohttp", "lean"])
def app(upstream: MockUpstream, request: pytest.FixtureRequest) -> Iterator[CCProxyApp]:
    """The app on each transport, against the same real local upstream (tests/support/mock_upstream.py)."""
    Sanic.test_mode = True
    transport = {"openai": {"transport": request.param}}
    application = sdk_like(create_app(make_settings(base_url=upstream.base_url, plugin_options=transport)))
    yield application
    Sanic.unregister_app(application)


def sse(*payloads: dict[str, Any] | str) -> str:
    return "".join(f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n" for p in payloads)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def post(app: CCProxyApp, body: dict[str, Any]) -> Any:
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(body), headers={"x-api-key": "k"})
    return response


def stream_events(response: Any) -> list[dict[str, Any]]:
    assert response.status == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.content)
    check_stream(events)
    return events


def error_body(response: Any, status: int, error_type: str) -> str:
    assert response.status == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert API_KEY not in response.text
    message: str = body["error"]["message"]
    return message


def stream_error(response: Any) -> dict[str, Any]:
    events = stream_events(response)
    assert events[-1]["type"] == "error", [event["type"] for event in events]
    assert not any(event["type"] == "message_stop" for event in events)
    error: dict[str, Any] = events[-1]["error"]
    return error


class ErrorRecords(logging.Handler):
    """Every ERROR (or worse) record of any logger while installed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_records(app: CCProxyApp) -> Iterator[ErrorRecords]:
    """Fails the test on any ERROR record; installed after the app has configured its (non-propagating) loggers."""
    handler = ErrorRecords()
    names = ("ccproxy", "sanic.error", "sanic.root")
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in names)]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)
    assert not handler.records, [record.getMessage() for record in handler.records]


# -- item 3: an upstream that ignores `stream: true` ------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream"])
async def test_a_json_completion_for_a_stream_request_is_streamed(
    app: CCProxyApp, upstream: MockUpstream, error_records: ErrorRecords, content_type: str
) -> None:
    upstream.post(upstream.chat_url, status=200, body=json.dumps(COMPLETION), content_type=content_type)
    message = accumulate(stream_events(await post(app, {**STREAM, "tools": TOOLS})))
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][1]["text"] == "Paris."
    assert message["content"][2]["input"] == {"command": "ls"}
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (12, 3)


async def test_a_json_error_for_a_stream_request_is_that_error_before_the_first_byte(
    app: CCProxyApp, upstream: MockUpstream
) -> None:
    upstream.post(upstream.chat_url, status=200, payload={"error": {"code": 429, "message": "Rate limited upstream"}})
    assert "Rate limited upstream" in error_body(await post(app, STREAM), 429, "rate_limit_error")


async def test_a_json_body_that_is_no_completion_is_a_502_before_the_first_byte(
    app: CCProxyApp, upstream: MockUpstream
) -> None:
    upstream.post(upstream.chat_url, status=200, payload={"object": "list", "data": []})
    assert "without choices" in error_body(await post(app, STREAM), 502, "api_error")


# -- item 9: bodies that are no stream, and streams cut short --------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        ("<html><body>Welcome to nginx!</body></html>", "text/html", "an HTML page (content-type text/html)"),
        ("<!DOCTYPE html><html></html>", "text/plain", "an HTML page"),
        ("upstream connect error or disconnect/reset before headers", "text/plain", "neither an event stream"),
        ("", "application/octet-stream", "an empty body"),
        ("{not json", "application/json", "invalid JSON"),
    ],
)
async def test_a_body_that_is_no_stream_is_a_502_before_the_first_byte(
    app: CCProxyApp, upstream: MockUpstream, body: str, content_type: str, fragment: str
) -> None:
    upstream.post(upstream.chat_url, status=200, body=body, content_type=content_type)
    assert fragment in error_body(await post(app, STREAM), 502, "api_error")


async def test_an_event_stream_without_finish_reason_or_done_ends_in_an_error_event(
    app: CCProxyApp, upstream: MockUpstream, error_records: ErrorRecords
) -> None:
    body = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "The capital of France is Par"}))
    upstream.post(upstream.chat_url, status=200, body=body, content_type="text/event-stream")
    response = await post(app, STREAM)
    error = stream_error(response)
    assert error["type"] == "api_error" and error["message"].startswith(CUT_MESSAGE)
    with pytest.raises(StreamGrammarError):
        accumulate(parse_sse(response.content))


async def test_an_empty_event_stream_ends_in_an_error_event(app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, status=200, body="", content_type="text/event-stream")
    assert "an empty body" in stream_error(await post(app, STREAM))["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/octet-stream"])
async def test_an_event_stream_with_another_label_is_streamed(
    app: CCProxyApp, upstream: MockUpstream, content_type: str
) -> None:
    body = sse(chunk({"content": "Paris."}), chunk({}, "stop"), "[DONE]")
    upstream.post(upstream.chat_url, status=200, body=body, content_type=content_type)
    assert accumulate(stream_events(await post(app, STREAM)))["content"] == [{"type": "text", "text": "Paris."}]


async def test_tool_arguments_that_are_not_json_end_the_stream_in_an_error_event(
    app: CCProxyApp, upstream: MockUpstream
) -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "l'}}
    body = sse(chunk({"tool_calls": [head]}), chunk({}, "tool_calls"), "[DONE]")
    upstream.post(upstream.chat_url, status=200, body=body, content_type="text/event-stream")
    error = stream_error(await post(app, {**STREAM, "tools": TOOLS}))
    assert "'Bash'" in error["message"] and "not valid JSON" in error["message"]


async def test_non_stream_tool_arguments_that_are_not_json_are_a_502(app: CCProxyApp, upstream: MockUpstream) -> None:
    broken = json.loads(json.dumps(COMPLETION))
    broken["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"command": "l'
    upstream.post(upstream.chat_url, status=200, payload=broken)
    assert "not valid JSON" in error_body(await post(app, {**HELLO, "tools": TOOLS}), 502, "api_error")


# -- item 10: malformed completions -----------------------------------------------------------------------------


def malformed(**changes: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(COMPLETION))
    body["choices"][0]["message"].pop("tool_calls")
    for key, value in changes.items():
        if key in ("usage",):
            body[key] = value
        elif key == "message":
            body["choices"][0]["message"] = value
        else:
            body["choices"][0][key] = value
    return body


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("changes", [{"usage": []}, {"usage": [1]}, {"finish_reason": 3}, {"finish_reason": ["x"]}])
async def test_malformed_completions_with_a_sensible_reading_are_answered(
    app: CCProxyApp, upstream: MockUpstream, error_records: ErrorRecords, changes: dict[str, Any], stream: bool
) -> None:
    upstream.post(upstream.chat_url, status=200, payload=malformed(**changes))
    response = await post(app, {**HELLO, "stream": stream})
    message = accumulate(stream_events(response)) if stream else response.json
    if not stream:
        assert response.status == 200, response.text
        check_message(message)
    assert message["content"][-1] == {"type": "text", "text": "Paris."}


@pytest.mark.parametrize("stream", [False, True])
async def test_a_message_that_is_a_list_is_a_502_naming_it(
    app: CCProxyApp, upstream: MockUpstream, error_records: ErrorRecords, stream: bool
) -> None:
    upstream.post(upstream.chat_url, status=200, payload=malformed(message=["a"]))
    message = error_body(await post(app, {**HELLO, "stream": stream}), 502, "api_error")
    assert "message is a list, not an object" in message


# -- fuzz: whatever the upstream answers, no 500 and no ERROR record --------------------------------------------

CONTENT_TYPES = ["application/json", "text/event-stream", "text/html", "text/plain", "application/octet-stream"]
upstream_answers = st.one_of(
    st.tuples(st.builds(json.dumps, completions), st.just("application/json")),
    st.tuples(
        st.builds(lambda stream: stream.body.decode("utf-8", "replace"), upstream_streams()),
        st.sampled_from(CONTENT_TYPES),
    ),
    st.tuples(st.text(max_size=40), st.sampled_from(CONTENT_TYPES)),
)


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answer=upstream_answers, stream=st.booleans())
async def test_any_upstream_answer_is_a_valid_answer_or_an_anthropic_error(
    app: CCProxyApp, upstream: MockUpstream, error_records: ErrorRecords, answer: tuple[str, str], stream: bool
) -> None:
    body, content_type = answer
    upstream.post(upstream.chat_url, status=200, body=body, content_type=content_type)
    response = await post(app, {**HELLO, "stream": stream, "tools": TOOLS})
    assert response.status != 500, response.text
    if response.status != 200:
        assert 400 <= response.status < 600
        body_json = response.json
        assert body_json["type"] == "error" and body_json["error"]["message"]
        assert body_json["error"]["message"] != "Internal proxy error"
    elif stream:
        events = stream_events(response)
        assert events[-1]["type"] in ("message_stop", "error")
        if events[-1]["type"] == "error":
            assert events[-1]["error"]["message"] != "Internal proxy error"
    else:
        check_message(response.json)
