"""Every OpenAI-format upstream answer through the core: streams split at every offset, and non-stream bodies.

The answers are the repository's own per-family cases (tests/fixtures/upstream) and, when ../shared is beside the
checkout, the recorded exchanges of ../shared/fixtures/recorded-upstream (test ids `shared:...`).

Splitting a stream of N bytes at each of its N+1 offsets and decoding the whole stream each time is quadratic
(about 2e8 event parses for these cassettes). The decoder's state at an event boundary is empty by contract,
so a split can only affect the event it falls in: each offset is therefore exercised on a window of the
stream, from the boundary before the previous event to the boundary after the next one, fed as two pieces
split at that offset and compared with the window's payloads. Whole-stream two-piece splits are also run at
the start, middle and end of every event, and the whole stream in one piece is checked against an
independent parser. Identical payloads give identical events: the translator depends on the chunks alone.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.errors import UpstreamError
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.fixtures import require_shared_dir
from tests.support.recorded import (
    Exchange,
    anthropic_streams,
    in_band_error,
    naive_sse_payloads,
    openai_completions,
    openai_error_streams,
    openai_errors,
    openai_streams,
    stream_error,
)

STREAMS = openai_streams()
ERROR_STREAMS = openai_error_streams()
COMPLETIONS = openai_completions()
ERRORS = openai_errors()
# Every OpenAI-format stream body, for the decoder: those that end normally and those that carry an error.
ALL_STREAMS = STREAMS + ERROR_STREAMS


def _own(cases: list[Exchange]) -> list[str]:
    return [case.id for case in cases if not case.shared]


def _shared(cases: list[Exchange]) -> list[Exchange]:
    return [case for case in cases if case.shared]


def test_the_in_repo_cases_are_found() -> None:
    # Each wire family's cases are sorted by shape; the Anthropic stream is not OpenAI-shaped and stays out.
    assert _own(STREAMS) == [
        "deepseek/reasoning_tool.sse",
        "openai/cached_usage.sse",
        "openai/empty_choices.sse",
        "openai/parallel_tools_interleaved.sse",
        "openai/text.sse",
        "openrouter/reasoning_anthropic.sse",
    ]
    assert _own(ERROR_STREAMS) == ["openrouter/error_event.sse", "openrouter/error_finish_reason.sse"]
    assert _own(COMPLETIONS) == [name.removesuffix(".sse") + ".json" for name in _own(STREAMS)]
    assert _own(ERRORS) == ["openrouter/error_event.json", "openrouter/error_finish_reason.json"]
    assert _own(anthropic_streams()) == ["anthropic/thinking_tool.sse"]


def test_the_shared_recorded_cases_are_found() -> None:
    require_shared_dir("recorded-upstream")
    # The cassettes hold 67 OpenAI-format streams and 65 non-stream bodies; the Anthropic and Gemini ones are
    # not OpenAI-shaped and must have been left out.
    assert len(_shared(STREAMS)) == 67
    assert len(_shared(COMPLETIONS)) == 65
    assert len(_shared(anthropic_streams())) == 8
    shared = _shared(STREAMS + COMPLETIONS)
    assert not any("TestAnthropic" in case.cassette or "gemini" in case.cassette for case in shared)


def context(exchange: Exchange) -> ResponseContext:
    return ResponseContext(
        message_id="msg_recorded0123456789abcdef",
        model="claude-sonnet-4-5",
        input_tokens_estimate=17,
        tool_names=ToolNameMap(exchange.tool_names()),
    )


def decode(core: Core, *pieces: bytes) -> list[bytes]:
    decoder = core.sse.SSEDecoder()
    payloads: list[bytes] = []
    for piece in pieces:
        payloads += decoder.feed(piece)
    return payloads + decoder.flush()


def event_bounds(raw: bytes) -> list[int]:
    """0, the offset after every blank line, and len(raw)."""
    bounds = [0]
    offset = 0
    for line in raw.splitlines(keepends=True):
        offset += len(line)
        if not line.rstrip(b"\r\n"):
            bounds.append(offset)
    if bounds[-1] != len(raw):
        bounds.append(len(raw))
    return bounds


def check_splits(core: Core, raw: bytes, offsets: Any = None) -> int:
    """Split `raw` at every offset (or the given ones) within its event window; returns the splits checked."""
    bounds = event_bounds(raw)
    wanted = None if offsets is None else set(offsets)
    checked = 0
    for event in range(len(bounds) - 1):
        first, last = bounds[event], bounds[event + 1]
        if event == len(bounds) - 2:
            last += 1  # the split after the final byte
        splits = [k for k in range(first, last) if wanted is None or k in wanted]
        if not splits:
            continue
        start, end = bounds[max(event - 1, 0)], bounds[min(event + 2, len(bounds) - 1)]
        window = raw[start:end]
        expected = [payload.encode() for payload in naive_sse_payloads(window)]
        for k in splits:
            assert decode(core, window[: k - start], window[k - start :]) == expected, (k, window)
        checked += len(splits)
    return checked


def chunks_of(payloads: list[bytes]) -> list[dict[str, Any]]:
    assert payloads[-1] == b"[DONE]"
    return [json.loads(payload) for payload in payloads[:-1]]


def translate(core: Core, chunks: list[dict[str, Any]], ctx: ResponseContext) -> list[dict[str, Any]]:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start()
    for chunk in chunks:
        events += translator.feed(chunk)
    return events + translator.finish()


@pytest.mark.parametrize("stream", ALL_STREAMS, ids=[stream.id for stream in ALL_STREAMS])
def test_decoder_matches_an_independent_reading(core: Core, stream: Exchange) -> None:
    reference = [payload.encode() for payload in naive_sse_payloads(stream.raw)]
    assert decode(core, stream.raw) == reference
    # A stream cut by an in-band error may end without [DONE] (OpenRouter closes the connection).
    assert reference[-1] == b"[DONE]" or stream in ERROR_STREAMS


@pytest.mark.parametrize("stream", ALL_STREAMS, ids=[stream.id for stream in ALL_STREAMS])
def test_split_at_every_byte_offset(core: Core, stream: Exchange) -> None:
    raw = stream.raw
    assert check_splits(core, raw) == len(raw) + 1
    # Whole-stream splits at the start, middle and end of every event.
    reference = decode(core, raw)
    bounds = event_bounds(raw)
    for first, last in itertools.pairwise(bounds):
        for k in {first, (first + last) // 2, last - 1}:
            assert decode(core, raw[:k], raw[k:]) == reference, k


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("stream", ALL_STREAMS, ids=[stream.id for stream in ALL_STREAMS])
def test_split_around_other_line_endings(core: Core, stream: Exchange, newline: bytes) -> None:
    # JSON escapes newlines inside strings, so every raw LF is a line end.
    raw = stream.raw.replace(b"\n", newline)
    assert decode(core, raw) == decode(core, stream.raw)
    near_line_ends = {k + step for k, byte in enumerate(raw) if byte in b"\r\n" for step in (0, 1, 2)}
    assert check_splits(core, raw, near_line_ends) > 0


@pytest.mark.parametrize("stream", STREAMS, ids=[stream.id for stream in STREAMS])
def test_feed_sse_writes_the_bytes_of_feeds_events(core: Core, stream: Exchange) -> None:
    # The pipeline sends `feed_sse`'s bytes; its fast paths must be invisible.
    ctx = context(stream)
    by_dicts, by_bytes = core.stream.StreamTranslator(ctx), core.stream.StreamTranslator(ctx)
    encoded = [core.sse.encode_events(by_bytes.start())]
    by_dicts.start()
    for chunk in chunks_of(decode(core, stream.raw)):
        sent = by_bytes.feed_sse(chunk)
        assert sent == core.sse.encode_events(by_dicts.feed(chunk)), chunk
        encoded.append(sent)
    encoded.append(core.sse.encode_events(by_bytes.finish()))
    assert core.sse.encode_events(by_dicts.finish()) == encoded[-1]
    assert parse_sse(b"".join(encoded)) == translate(core, chunks_of(decode(core, stream.raw)), ctx)


@pytest.mark.parametrize("stream", STREAMS, ids=[stream.id for stream in STREAMS])
def test_stream_translation(core: Core, stream: Exchange) -> None:
    ctx = context(stream)
    chunks = chunks_of(decode(core, stream.raw))
    events = translate(core, chunks, ctx)
    check_stream(events)
    assert parse_sse(b"".join(core.sse.encode_event(event) for event in events)) == events

    streamed = accumulate(events)
    expected = core.response.convert_response(core.response.accumulate_chunks(chunks), ctx)
    if expected["content"] == [{"type": "text", "text": ""}]:
        expected["content"] = []  # a stream never opens an empty text block
    assert streamed == expected
    check_against_chunks(streamed, chunks, stream)


def check_against_chunks(message: dict[str, Any], chunks: list[dict[str, Any]], stream: Exchange) -> None:
    """Structural facts read straight from the chunks."""
    usages = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    usage = message["usage"]
    if usages:
        total_input = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
        assert total_input == usages[-1]["prompt_tokens"]
        assert usage["output_tokens"] == usages[-1]["completion_tokens"]
    deltas = [choice.get("delta") or {} for chunk in chunks for choice in chunk.get("choices") or []]
    call_indices = {call["index"] for delta in deltas for call in delta.get("tool_calls") or []}
    tool_blocks = [block for block in message["content"] if block["type"] == "tool_use"]
    assert len(tool_blocks) == len(call_indices)
    assert {block["name"] for block in tool_blocks} <= set(stream.tool_names())
    assert all(isinstance(block["input"], dict) and block["input"] for block in tool_blocks)
    finish = [choice["finish_reason"] for chunk in chunks for choice in chunk["choices"] if choice.get("finish_reason")]
    assert message["stop_reason"] == ("tool_use" if finish[0] == "tool_calls" else "end_turn")
    kinds = [block["type"] for block in message["content"]]
    assert kinds == sorted(kinds, key=["thinking", "text", "tool_use"].index)
    reasons_first = next(
        (bool(_reasoning(delta)) for delta in deltas if _reasoning(delta) or delta.get("content")), False
    )
    assert (kinds[:1] == ["thinking"]) == reasons_first


def _reasoning(delta: dict[str, Any]) -> Any:
    return delta.get("reasoning_content") or delta.get("reasoning") or delta.get("reasoning_details")


@pytest.mark.parametrize("stream", ERROR_STREAMS, ids=[stream.id for stream in ERROR_STREAMS])
def test_in_band_stream_error_ends_the_stream_with_an_error_event(core: Core, stream: Exchange) -> None:
    # What came before the error reaches the client as it came; the error ends the stream as an `error` event
    # (no message_stop: the answer is not complete) with the upstream's message and status class.
    chunks = [json.loads(payload) for payload in decode(core, stream.raw) if payload != b"[DONE]"]
    failing = next(position for position, chunk in enumerate(chunks) if in_band_error(chunk) is not None)
    translator = core.stream.StreamTranslator(context(stream))
    events = translator.start()
    for chunk in chunks[:failing]:
        events += translator.feed(chunk)
    with pytest.raises(UpstreamError) as caught:
        translator.feed(chunks[failing])
    events += translator.error_events(caught.value)
    check_stream(events)
    expected = stream_error(stream)
    assert events[-1]["type"] == "error"
    assert expected["message"] in events[-1]["error"]["message"]
    assert caught.value.status == expected["code"]
    streamed = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
    sent = "".join(
        choice["delta"].get("content") or "" for chunk in chunks[:failing] for choice in chunk.get("choices") or []
    )
    assert streamed == sent and sent


@pytest.mark.parametrize("case", COMPLETIONS + ERRORS, ids=[case.id for case in COMPLETIONS + ERRORS])
def test_non_stream_body(core: Core, case: Exchange) -> None:
    ctx = context(case)
    body = json.loads(case.body)
    if case in ERRORS:
        with pytest.raises(UpstreamError, match=re.escape(str(in_band_error(body).get("message", ""))[:20])):
            core.response.convert_response(body, ctx)
        return
    message = core.response.convert_response(body, ctx)
    openai_message = body["choices"][0]["message"]
    kinds = [block["type"] for block in message["content"]]
    assert kinds == sorted(kinds, key=["thinking", "text", "tool_use"].index)
    assert kinds.count("text") <= 1
    assert kinds.count("tool_use") == len(openai_message.get("tool_calls") or [])
    assert ("thinking" in kinds) == bool(openai_message.get("reasoning_content") or openai_message.get("reasoning"))
    for block in message["content"]:
        if block["type"] == "tool_use":
            assert block["id"] in {call["id"] for call in openai_message["tool_calls"]}
            assert block["name"] in case.tool_names()
            assert isinstance(block["input"], dict) and block["input"]
    details = openai_message.get("reasoning_details") or []
    signatures = [block["signature"] for block in message["content"] if block["type"] == "thinking"]
    assert [sig for sig in signatures if sig] == [item["signature"] for item in details if item.get("signature")]
    finish = body["choices"][0]["finish_reason"]
    assert message["stop_reason"] == {"stop": "end_turn", "tool_calls": "tool_use"}[finish]
    usage = message["usage"]
    total_input = usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_creation_input_tokens"]
    assert total_input == body["usage"]["prompt_tokens"]
    assert usage["output_tokens"] == body["usage"]["completion_tokens"]
    assert (message["id"], message["model"], message["stop_sequence"]) == (ctx.message_id, ctx.model, None)


ANTHROPIC_STREAMS = anthropic_streams()


@pytest.mark.parametrize("stream", ANTHROPIC_STREAMS, ids=[stream.id for stream in ANTHROPIC_STREAMS])
def test_grammar_checker_accepts_real_anthropic_streams(core: Core, stream: Exchange) -> None:
    # The checker is only worth something if the real API passes it.
    check_stream([json.loads(payload) for payload in decode(core, stream.raw)])


def skeleton(events: list[dict[str, Any]]) -> list[str]:
    """Event kinds without pings, runs of the same delta kind collapsed: the shape of a stream."""
    shape: list[str] = []
    for event in events:
        kind = event["type"]
        if kind == "content_block_start":
            kind += ":" + event["content_block"]["type"]
        elif kind == "content_block_delta":
            kind += ":" + event["delta"]["type"]
        if kind != "ping" and (not shape or shape[-1] != kind):
            shape.append(kind)
    return shape


NATIVE_SHAPE = [
    "message_start",
    "content_block_start:thinking",
    "content_block_delta:thinking_delta",
    "content_block_delta:signature_delta",
    "content_block_stop",
    "content_block_start:text",
    "content_block_delta:text_delta",
    "content_block_stop",
    "content_block_start:tool_use",
    "content_block_delta:input_json_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]


def _case(cases: list[Exchange], case_id: str) -> Exchange:
    (case,) = [case for case in cases if case.id == case_id]
    return case


def test_translated_thinking_stream_has_the_native_shape(core: Core) -> None:
    # One prompt (thinking, a sentence, then a weather tool call) answered in Anthropic's native form and by
    # Claude through OpenRouter's OpenAI-compatible API, with its signature and an encrypted reasoning detail.
    native = _case(ANTHROPIC_STREAMS, "anthropic/thinking_tool.sse")
    routed = _case(STREAMS, "openrouter/reasoning_anthropic.sse")
    native_events = [json.loads(payload) for payload in decode(core, native.raw)]
    translated = translate(core, chunks_of(decode(core, routed.raw)), context(routed))
    assert skeleton(translated) == skeleton(native_events) == NATIVE_SHAPE


def test_translated_recorded_thinking_stream_has_the_recorded_native_shape(core: Core) -> None:
    require_shared_dir("recorded-upstream")
    native = _case(ANTHROPIC_STREAMS, "shared:TestAnthropicThinking/claude-sonnet-4/thinking-streaming#0")
    routed = _case(STREAMS, "shared:TestOpenRouterThinking/anthropic/thinking-streaming#0")
    native_events = [json.loads(payload) for payload in decode(core, native.raw)]
    translated = translate(core, chunks_of(decode(core, routed.raw)), context(routed))
    assert skeleton(translated) == skeleton(native_events)
    # No text between the thinking and the tool call in this recording.
    assert skeleton(translated) == NATIVE_SHAPE[:5] + NATIVE_SHAPE[8:]
