"""The SSE decoder's memory bound (issue 11 item 7): a line (or an event's data lines) longer than `max_line` ends the
stream with a 502 error event instead of being buffered — a 300 MB line once took the proxy to 999 MB."""

from __future__ import annotations

import json

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.errors import ProxyError, UpstreamError
from tests.support.anthropic_stream import check_stream, parse_sse

LIMIT = 4096
CHUNK = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "hi"}}]}


def test_a_line_without_its_end_past_the_limit_raises(core: Core) -> None:
    decoder = core.sse.SSEDecoder(LIMIT)
    decoder.feed(b"data: ")
    with pytest.raises(UpstreamError, match="line longer than 4096 bytes") as refused:
        for _ in range(100):
            decoder.feed(b"x" * 512)
    assert refused.value.status == 502


def test_many_data_lines_of_one_event_past_the_limit_raise(core: Core) -> None:
    decoder = core.sse.SSEDecoder(LIMIT)
    with pytest.raises(UpstreamError, match="event longer than 4096 bytes"):
        for _ in range(100):
            decoder.feed(b"data: " + b"y" * 100 + b"\n")


def test_lines_and_events_under_the_limit_pass_however_they_are_cut(core: Core) -> None:
    payload = json.dumps({"text": "z" * 3000}).encode()
    stream = b"data: " + payload + b"\n\n" + b"data: a\ndata: b\n\n"
    for size in (1, 7, 512, len(stream)):
        decoder = core.sse.SSEDecoder(LIMIT)
        payloads = [p for start in range(0, len(stream), size) for p in decoder.feed(stream[start : start + size])]
        assert payloads + decoder.flush() == [payload, b"a\nb"], size


def test_the_limit_counts_one_line_not_the_whole_stream(core: Core) -> None:
    decoder = core.sse.SSEDecoder(LIMIT)
    line = b"data: " + b"w" * 3000 + b"\n\n"
    for _ in range(50):  # 150 KB in all, each line under the limit, cut mid-line
        assert decoder.feed(line[:1000]) == []
        assert decoder.feed(line[1000:]) == [b"w" * 3000]


def test_the_relay_ends_the_stream_with_an_error_event(core: Core, ctx: ResponseContext) -> None:
    relay = core.relay.StreamRelay(ctx, max_line=LIMIT)
    out = [relay.start(), relay.feed(b"data: " + json.dumps(CHUNK).encode() + b"\n\n")]
    try:
        for _ in range(20):
            out.append(relay.feed(b"data: " + b"q" * 1000))
        raise AssertionError("a 20 KB line passed a 4 KB limit")
    except ProxyError as exc:
        out.append(relay.fail(exc))
    events = parse_sse(b"".join(out))
    check_stream(events)
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "api_error"
    assert "MAX_SSE_LINE_BYTES" in events[-1]["error"]["message"]
