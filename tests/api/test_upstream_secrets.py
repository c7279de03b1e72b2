"""No trace of the upstream key reaches a client or a log line, whichever path the upstream's text takes.

Keys of several shapes x every path that carries upstream text: HTTP error bodies (JSON and plain text), in-band
`{"error": ...}` bodies answering 200, error chunks and `finish_reason: "error"` inside a 200 stream, and the HTTP
client's own exception text (a malformed status line, a malformed chunked body) — on both transports (aiohttp and
the lean client). The app runs with LOG_LEVEL=DEBUG; what its log handler writes and what pytest's caplog receives
after it are both searched.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from tests.api.conftest import make_settings, sdk_like
from tests.support.raw_upstream import RawUpstream, http_answer, sse_answer
from tests.support.upstream_keys import key_shapes, leaked_pieces

KEYS = key_shapes()
REQUEST = {"model": "claude-opus-4-8", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def echo(key: str) -> str:
    """What upstreams write back: the key whole, URL-encoded, and inside a JSON string."""
    return f"Incorrect API key provided: {key}. Request: /v1?key={quote(key, safe='')} {json.dumps({'k': key})}"


def text_chunk(text: str) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


def finish_error(message: str) -> dict[str, Any]:
    choice = {"index": 0, "delta": {}, "finish_reason": "error", "error": {"code": 502, "message": message}}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}


def completion_ending_in_error(message: str) -> dict[str, Any]:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": "partial"},
        "finish_reason": "error",
        "error": {"code": 502, "message": message},
    }
    return {"id": "c", "object": "chat.completion", "choices": [choice]}


def broken_chunked_stream(key: str) -> list[bytes]:
    """A chunked SSE body whose second chunk-size line is garbage quoting the key, all in one packet: aiohttp's
    parser raises with that line in its message. (Sent after the head has been read, aiohttp 3.13's C parser does
    not raise at all but waits for the read timeout, so that variant cannot be part of a test.)"""
    data = b"data: " + json.dumps(text_chunk("partial")).encode() + b"\n\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    return [head + b"%x\r\n%s\r\n" % (len(data), data) + f"zz{key}\r\n".encode()]


@dataclass(frozen=True)
class UpstreamPath:
    """One way upstream text reaches ccproxy: the bytes the upstream sends, and whether the client streams."""

    stream: bool
    answer: Callable[[str], list[bytes]]


PATHS: dict[str, UpstreamPath] = {
    "http-error-json": UpstreamPath(False, lambda key: http_answer(401, {"error": {"message": echo(key)}})),
    "http-error-json-stream": UpstreamPath(True, lambda key: http_answer(401, {"error": {"message": echo(key)}})),
    "http-error-text": UpstreamPath(False, lambda key: http_answer(403, echo(key).encode(), "text/plain")),
    "200-json-error": UpstreamPath(False, lambda key: http_answer(200, {"error": {"message": echo(key), "code": 401}})),
    "200-json-error-string": UpstreamPath(False, lambda key: http_answer(200, {"error": echo(key)})),
    "200-finish-reason-error": UpstreamPath(False, lambda key: http_answer(200, completion_ending_in_error(echo(key)))),
    "stream-error-chunk": UpstreamPath(
        True, lambda key: sse_answer(text_chunk("partial"), {"error": {"message": echo(key), "code": 502}})
    ),
    "stream-first-chunk-error": UpstreamPath(True, lambda key: sse_answer({"error": {"message": echo(key)}})),
    "stream-finish-reason-error": UpstreamPath(
        True, lambda key: sse_answer(text_chunk("partial"), finish_error(echo(key)))
    ),
    "bad-status-line": UpstreamPath(False, lambda key: [f"HTTP/1.1 2x0 {key}\r\n\r\n".encode()]),
    "bad-status-line-stream": UpstreamPath(True, lambda key: [f"HTTP/1.1 2x0 {key}\r\n\r\n".encode()]),
    "broken-chunked-body": UpstreamPath(True, broken_chunked_stream),
}


@dataclass
class Captured:
    """What the app's own log handler wrote, and what a handler added after it (pytest's caplog) received."""

    handler_output: io.StringIO
    caplog: pytest.LogCaptureFixture

    def texts(self) -> list[str]:
        records = [record.getMessage() for record in self.caplog.records]
        return [self.handler_output.getvalue(), self.caplog.text, *records]


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream()
    yield upstream
    await upstream.close()


async def start_app(
    upstream: RawUpstream, key: str, caplog: pytest.LogCaptureFixture, transport: str
) -> tuple[CCProxyApp, Captured]:
    Sanic.test_mode = True
    settings = make_settings(
        api_key=key,
        base_url=await upstream.start(),
        log_level="DEBUG",
        plugin_options={"openai": {"transport": transport}},
    )
    app = sdk_like(create_app(settings))
    logger = logging.getLogger("ccproxy")
    (handler,) = logger.handlers
    output = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output)
    logger.addHandler(caplog.handler)  # after the app's handler, as any extra handler would be
    caplog.set_level(logging.DEBUG, logger="ccproxy")
    return app, Captured(output, caplog)


@pytest.mark.parametrize("transport", ["aiohttp", "lean"])
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("shape", list(KEYS))
async def test_the_key_reaches_neither_client_nor_log(
    raw_upstream: RawUpstream, caplog: pytest.LogCaptureFixture, shape: str, path: str, transport: str
) -> None:
    key, scenario = KEYS[shape], PATHS[path]
    app, captured = await start_app(raw_upstream, key, caplog, transport)
    try:
        raw_upstream.script.append(scenario.answer(key))
        _, response = await app.asgi_client.post(
            "/v1/messages", content=json.dumps({**REQUEST, "stream": scenario.stream}), headers={"x-api-key": "x"}
        )
    finally:
        logging.getLogger("ccproxy").removeHandler(caplog.handler)
        Sanic.unregister_app(app)
    assert raw_upstream.requests, "the upstream was never called"
    assert f"Bearer {key}".encode() in raw_upstream.requests[0], "the key must still be sent upstream"
    # The failure reached the client as an Anthropic error...
    error = _client_error(response)
    assert error["type"] and error["message"]
    # ...without any piece of the key, in the body or the headers.
    assert leaked_pieces(response.text, key) == [], response.text
    assert leaked_pieces(json.dumps(dict(response.headers)), key) == []
    # The failure was logged (at DEBUG everything is), and no log line carries a piece of the key.
    assert "[redacted]" in captured.handler_output.getvalue()
    for text in captured.texts():
        assert leaked_pieces(text, key) == [], text


def _client_error(response: Any) -> dict[str, Any]:
    """The `error` object of a JSON error answer, or of the `error` event that ended a stream."""
    if response.status != 200:
        body = response.json
        assert body["type"] == "error"
        return dict(body["error"])
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert events and events[-1]["type"] == "error", response.text
    return dict(events[-1]["error"])
