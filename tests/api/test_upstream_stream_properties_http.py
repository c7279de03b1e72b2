"""Hostile upstream streams through the whole HTTP path (issue 11 item 8): a real TCP upstream (RawUpstream) writes
the bodies of tests/support/upstream_strategies.py (SSE streams and JSON completions) in pieces — close-delimited,
with a Content-Length, chunked, or a connection that drops before the promised length — under any status and
content type, and the app reads them with each of its real transports (the lean client and aiohttp).

tests/api/test_upstream_faults_http.py fuzzes the same bodies through tests/support/mock_upstream.py, which sends each
well framed with status 200; this adds what only a raw socket shows: reads that end anywhere, broken HTTP framing, error
statuses with stream bodies. Whatever arrives: no 500 the upstream did not send, every error in the Anthropic
envelope, no traceback, a stream that passes the Anthropic grammar, and never a cut answer that ends as if complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sanic import Sanic

from ccproxy.app import create_app
from tests.api.conftest import API_KEY, make_settings, sdk_like
from tests.support.anthropic_message import check_message
from tests.support.anthropic_stream import check_stream, parse_sse
from tests.support.log_watch import LogWatch, watching_logs
from tests.support.raw_upstream import RawUpstream
from tests.support.served_app import ServedApp, served
from tests.support.upstream_strategies import UpstreamStream, completions, splits, upstream_streams

HELLO = {
    "model": "claude-opus-4-8",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
    "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
}
FRAMINGS = ("close", "length", "chunked", "chunked-unterminated", "short")
STATUSES = (200, 200, 200, 200, 400, 429, 500, 503)
CONTENT_TYPES = ("text/event-stream", "text/event-stream", "application/json", "text/plain")
PIECE_PAUSE_SECONDS = 0.0005  # between the pieces of one body, so most pieces reach the proxy in reads of their own


@dataclass(frozen=True)
class Answer:
    """One scripted upstream answer: its HTTP status, content type, framing and body pieces."""

    status: int
    content_type: str
    framing: str
    pieces: tuple[bytes, ...]
    # Whether the body holds an end of the answer: a finish reason or `[DONE]` in the SSE sent, or a JSON body
    # (whole by construction; the HTTP framing around it may still break).
    ends: bool

    def parts(self) -> list[bytes]:
        """The bytes RawUpstream writes, one write per part."""
        body = b"".join(self.pieces)
        head = f"HTTP/1.1 {self.status} X\r\nContent-Type: {self.content_type}\r\nConnection: close\r\n"
        if self.framing == "length":
            head += f"Content-Length: {len(body)}\r\n"
        elif self.framing == "short":  # promises more than it sends, then closes
            head += f"Content-Length: {len(body) + 10}\r\n"
        elif self.framing.startswith("chunked"):
            head += "Transfer-Encoding: chunked\r\n"
        parts = [(head + "\r\n").encode()]
        if self.framing.startswith("chunked"):
            parts += [f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in self.pieces]
            if self.framing == "chunked":
                parts.append(b"0\r\n\r\n")
        else:
            parts += list(self.pieces)
        return parts


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    """Mostly SSE bodies (any of upstream_streams), sometimes a JSON completion (any of completions)."""
    if draw(st.integers(0, 3)):
        stream: UpstreamStream = draw(upstream_streams())
        body, ends, content_types = stream.body, stream.ends_the_answer(), CONTENT_TYPES
    else:
        body, ends, content_types = json.dumps(draw(completions)).encode(), True, ("application/json", "text/plain")
    pieces = tuple(draw(splits(body))) or (b"",)
    status = draw(st.sampled_from(STATUSES))
    return Answer(status, draw(st.sampled_from(content_types)), draw(st.sampled_from(FRAMINGS)), pieces, ends)


@pytest.fixture
async def raw_upstream() -> AsyncIterator[tuple[RawUpstream, str]]:
    upstream = RawUpstream(pause=PIECE_PAUSE_SECONDS)
    url = await upstream.start()
    yield upstream, url
    await upstream.close()


@pytest.fixture(params=["lean", "aiohttp"])
async def proxy(raw_upstream: tuple[RawUpstream, str], request: pytest.FixtureRequest) -> AsyncIterator[ServedApp]:
    Sanic.test_mode = True
    transport = {"openai": {"transport": request.param}}  # the default, and the one still selectable
    app = sdk_like(create_app(make_settings(base_url=raw_upstream[1], plugin_options=transport)))
    try:
        async with served(app) as client:
            yield client
    finally:
        Sanic.unregister_app(app)


@pytest.fixture
def log_watch(proxy: ServedApp) -> Iterator[LogWatch]:
    with watching_logs() as watch:
        yield watch
    assert not watch.records, watch.problems()


def check_error(response: httpx.Response, answer: Answer) -> None:
    """An error answer: the Anthropic envelope, a 4xx or a 5xx the upstream caused, never ccproxy's own 500."""
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    body = response.json()
    assert body["type"] == "error" and body["error"]["message"], body
    assert body["error"]["message"] != "Internal proxy error", "an unexpected exception inside ccproxy"
    if response.status_code >= 500:
        # The upstream's own 5xx passed on, or a 502 for a 200 answer that was no usable completion.
        assert answer.status >= 500 or response.status_code == 502, (answer.status, response.status_code, body)
    else:
        assert 400 <= response.status_code < 500, response.status_code


def check_stream_answer(response: httpx.Response, answer: Answer) -> None:
    events = parse_sse(response.content)
    check_stream(events)
    last = events[-1]
    assert last["type"] in ("message_stop", "error"), [event["type"] for event in events]
    if last["type"] == "error":
        assert last["error"]["message"] != "Internal proxy error", "an unexpected exception inside ccproxy"
    else:  # an answer that ends as complete had an end in what was sent (the HTTP framing may still be broken after)
        assert answer.status == 200 and answer.ends, answer


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(answer=answers(), stream=st.booleans())
async def test_any_upstream_answer_over_http_is_a_valid_answer_or_an_anthropic_error(
    proxy: ServedApp,
    raw_upstream: tuple[RawUpstream, str],
    log_watch: LogWatch,
    answer: Answer,
    stream: bool,
) -> None:
    upstream, _ = raw_upstream
    upstream.script = [answer.parts()]
    response = await proxy.post("/v1/messages", json.dumps({**HELLO, "stream": stream}).encode(), {"x-api-key": "k"})
    kind = response.headers["content-type"].split(";")[0]
    event(f"{answer.framing} {answer.status} -> {response.status_code} {kind}")  # --hypothesis-show-statistics
    assert "Traceback" not in response.text and API_KEY not in response.text
    assert response.status_code != 500 or answer.status == 500, response.text[:500]
    if response.status_code != 200:
        check_error(response, answer)
    elif response.headers["content-type"].startswith("text/event-stream"):
        assert stream, "a stream answer to a non-stream request"
        check_stream_answer(response, answer)
    else:
        assert not stream and answer.status == 200, answer
        check_message(response.json())
