"""How an upstream answer to a stream request ends: cut streams, `[DONE]`, broken tool arguments, and bodies that
are not event streams at all (issue 6 items 3 and 9), through StreamTranslator and StreamRelay."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.relay import EMPTY, HTML, JSON, SSE, TEXT
from ccproxy.core.response import RAW_ARGUMENTS_KEY
from ccproxy.errors import ProxyError, UpstreamError
from tests.support.anthropic_stream import StreamGrammarError, accumulate, check_stream, parse_sse

CUT_MESSAGE = "Upstream stream ended before the answer was complete"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }


def tool_chunk(arguments: str, call_id: str | None = "call_1", name: str | None = "Bash") -> dict[str, Any]:
    entry: dict[str, Any] = {"index": 0, "function": {"arguments": arguments}}
    if call_id:
        entry["id"] = call_id
    if name:
        entry["function"]["name"] = name
    return chunk({"tool_calls": [entry]})


USAGE = {"id": "c", "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 4}}


def sse(*payloads: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: " + (p.encode() if isinstance(p, str) else json.dumps(p).encode()) + b"\n\n" for p in payloads
    )


def relay_events(core: Core, ctx: ResponseContext, body: bytes, pieces: int = 1) -> list[dict[str, Any]]:
    """The events a client receives for `body`, fed in `pieces` reads, with failures turned into the error event
    exactly as the pipeline does."""
    relay = core.relay.StreamRelay(ctx)
    out = [relay.start()]
    size = max(1, -(-len(body) // pieces))
    try:
        for start in range(0, len(body), size):
            out.append(relay.feed(body[start : start + size]))
            if relay.done:
                break
        out.append(relay.end())
    except ProxyError as exc:
        out.append(relay.fail(exc))
    events = parse_sse(b"".join(out))
    check_stream(events)
    return events


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    assert events[-1]["type"] == "error", [event["type"] for event in events]
    assert not any(event["type"] in ("message_delta", "message_stop") for event in events)
    error: dict[str, Any] = events[-1]["error"]
    return error


# -- item 9: a stream cut short -------------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", [1, 3, 50])
def test_a_stream_cut_without_finish_reason_or_done_ends_in_an_error_event(
    core: Core, ctx: ResponseContext, pieces: int
) -> None:
    body = sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "The capital of France is Par"}))
    events = relay_events(core, ctx, body, pieces)
    error = error_of(events)
    assert error["type"] == "api_error"
    assert error["message"].startswith(CUT_MESSAGE)
    # The text that did arrive was streamed before the error.
    assert any(event.get("delta", {}).get("text") == "The capital of France is Par" for event in events)
    with pytest.raises(StreamGrammarError):
        accumulate(events)


def test_end_of_body_without_finish_reason_raises(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    translator.start()
    translator.feed(chunk({"content": "Par"}))
    with pytest.raises(UpstreamError) as raised:
        translator.end_of_body()
    assert raised.value.status == 502 and raised.value.message.startswith(CUT_MESSAGE)


def test_a_cut_after_the_finish_reason_is_a_complete_answer(core: Core, ctx: ResponseContext) -> None:
    # The usage chunk and [DONE] were lost, the answer itself was complete.
    events = relay_events(core, ctx, sse(chunk({"content": "Paris."}), chunk({}, "stop")))
    message = accumulate(events)
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "Paris."}]


def test_done_without_finish_reason_is_a_normal_end(core: Core, ctx: ResponseContext) -> None:
    events = relay_events(core, ctx, sse(chunk({"content": "Paris."}), "[DONE]"))
    assert accumulate(events)["stop_reason"] == "end_turn"


def test_done_without_finish_reason_after_a_tool_call_is_tool_use(core: Core, ctx: ResponseContext) -> None:
    events = relay_events(core, ctx, sse(tool_chunk('{"command": "ls"}'), "[DONE]"))
    message = accumulate(events)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0]["input"] == {"command": "ls"}


def test_a_stream_of_only_comments_is_cut(core: Core, ctx: ResponseContext) -> None:
    error = error_of(relay_events(core, ctx, b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"))
    assert error["message"].startswith(CUT_MESSAGE)


def test_a_stream_of_chunks_that_are_not_objects_is_cut(core: Core, ctx: ResponseContext) -> None:
    assert error_of(relay_events(core, ctx, sse("1", '"keep-alive"', "[1]")))["message"].startswith(CUT_MESSAGE)


# -- item 9: tool arguments that are not valid JSON at the end -------------------------------------------------


@pytest.mark.parametrize("end", [[chunk({}, "tool_calls"), USAGE, "[DONE]"], [chunk({}, "stop")], ["[DONE]"]])
def test_tool_arguments_that_are_not_json_at_the_end_become_an_error_event(
    core: Core, ctx: ResponseContext, end: list[dict[str, Any] | str]
) -> None:
    events = relay_events(core, ctx, sse(tool_chunk('{"command": "rm -rf /tmp/x'), *end))
    error = error_of(events)
    assert error["type"] == "api_error"
    assert "'Bash'" in error["message"] and "not valid JSON" in error["message"]


def test_a_broken_tool_call_after_the_finish_reason_is_caught_at_the_end(core: Core, ctx: ResponseContext) -> None:
    body = sse(chunk({"content": "Sure."}), chunk({}, "stop"), tool_chunk('{"command": '), USAGE, "[DONE]")
    assert "not valid JSON" in error_of(relay_events(core, ctx, body))["message"]


def test_tool_arguments_cut_at_the_token_limit_are_passed_on_as_max_tokens(core: Core, ctx: ResponseContext) -> None:
    events = relay_events(core, ctx, sse(tool_chunk('{"command": "rm -rf /tm'), chunk({}, "length"), USAGE, "[DONE]"))
    assert events[-1]["type"] == "message_stop"
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    partial = [event["delta"]["partial_json"] for event in events if event.get("delta", {}).get("partial_json")]
    assert "".join(partial) == '{"command": "rm -rf /tm'


def test_tool_arguments_completed_by_a_later_fragment_are_fine(core: Core, ctx: ResponseContext) -> None:
    body = sse(tool_chunk('{"command": '), tool_chunk('"ls"}', None, None), chunk({}, "tool_calls"), "[DONE]")
    assert accumulate(relay_events(core, ctx, body))["content"][0]["input"] == {"command": "ls"}


def completion(message: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


def bad_call(arguments: str) -> dict[str, Any]:
    return {"tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": arguments}}]}


@pytest.mark.parametrize("finish", ["tool_calls", "stop", None])
def test_non_stream_tool_arguments_that_are_not_json_are_a_502(
    core: Core, ctx: ResponseContext, finish: str | None
) -> None:
    with pytest.raises(UpstreamError) as raised:
        core.response.convert_response(completion(bad_call('{"command": "ls"'), finish), ctx)
    assert raised.value.status == 502
    assert "'Bash'" in raised.value.message and "not valid JSON" in raised.value.message


def test_non_stream_tool_arguments_cut_at_the_token_limit_are_kept_as_text(core: Core, ctx: ResponseContext) -> None:
    message = core.response.convert_response(completion(bad_call('{"command": "l'), "length"), ctx)
    assert message["stop_reason"] == "max_tokens"
    assert message["content"][0]["input"] == {RAW_ARGUMENTS_KEY: '{"command": "l'}


# -- item 3: an upstream that answers a stream request with one JSON completion ---------------------------------


FULL_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "reasoning_content": "Think first.",
                "content": "Paris.",
                "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "Bash", "arguments": '{"a": 1}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 10}},
}


def test_replay_of_a_completion_is_the_stream_of_its_message(core: Core, ctx: ResponseContext) -> None:
    message = core.response.convert_response(FULL_COMPLETION, ctx)
    translator = core.stream.StreamTranslator(ctx)
    events = translator.replay(message)
    check_stream(events)
    assert translator.done and translator.finish() == []
    streamed = accumulate(events)
    assert streamed == message
    assert [block["type"] for block in streamed["content"]] == ["thinking", "text", "tool_use"]
    assert streamed["stop_reason"] == "tool_use"
    assert streamed["usage"]["input_tokens"] == 20 and streamed["usage"]["cache_read_input_tokens"] == 10


def test_replay_leaves_out_the_empty_text_block_of_an_empty_answer(core: Core, ctx: ResponseContext) -> None:
    message = core.response.convert_response(completion({"content": ""}, "stop"), ctx)
    assert message["content"] == [{"type": "text", "text": ""}]
    events = core.stream.StreamTranslator(ctx).replay(message)
    check_stream(events)
    assert [event["type"] for event in events] == ["message_start", "ping", "message_delta", "message_stop"]


def test_replay_carries_a_thinking_signature(core: Core, ctx: ResponseContext) -> None:
    details = [{"type": "reasoning.text", "text": "hm", "signature": "sig==", "index": 0}]
    message = core.response.convert_response(completion({"content": "ok", "reasoning_details": details}, "stop"), ctx)
    streamed = accumulate(core.stream.StreamTranslator(ctx).replay(message))
    assert streamed["content"][0] == {"type": "thinking", "thinking": "hm", "signature": "sig=="}


@pytest.mark.parametrize("pieces", [1, 7])
def test_a_json_completion_labelled_as_an_event_stream_is_replayed(
    core: Core, ctx: ResponseContext, pieces: int
) -> None:
    events = relay_events(core, ctx, json.dumps(FULL_COMPLETION, indent=2).encode(), pieces)
    assert accumulate(events) == core.response.convert_response(FULL_COMPLETION, ctx)


def test_a_json_error_labelled_as_an_event_stream_is_that_error(core: Core, ctx: ResponseContext) -> None:
    body = json.dumps({"error": {"code": 429, "message": "Rate limited upstream"}}).encode()
    assert error_of(relay_events(core, ctx, body)) == {"type": "rate_limit_error", "message": "Rate limited upstream"}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "an empty body"),
        (b"   \n", "an empty body"),
        (b"<!DOCTYPE html><html><body>Gateway</body></html>", "an HTML page"),
        (b"upstream connect error or disconnect/reset before headers", "neither an event stream nor JSON"),
        (b'{"choices": [', "invalid JSON"),
        (b"[1, 2]", "unexpected JSON value"),
    ],
)
def test_a_body_labelled_as_an_event_stream_that_is_none_is_an_error_event(
    core: Core, ctx: ResponseContext, body: bytes, fragment: str
) -> None:
    error = error_of(relay_events(core, ctx, body, 2))
    assert error["type"] == "api_error" and fragment in error["message"]


def test_a_chunk_that_is_not_json_is_an_error_event(core: Core, ctx: ResponseContext) -> None:
    error = error_of(relay_events(core, ctx, sse(chunk({"content": "a"})) + b"data: {not json\n\n"))
    assert error["message"] == "Upstream sent a malformed stream chunk"


def test_events_before_a_failure_in_the_same_read_still_arrive(core: Core, ctx: ResponseContext) -> None:
    relay = core.relay.StreamRelay(ctx)
    relay.start()
    with pytest.raises(UpstreamError) as raised:
        relay.feed(sse(chunk({"content": "kept"}), {"error": {"message": "boom"}}))
    tail = parse_sse(relay.fail(raised.value))
    assert [event["type"] for event in tail] == ["content_block_start", "content_block_delta", "error"]


# -- telling a body's kind -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("text/event-stream", True), ("TEXT/EVENT-STREAM", True), ("application/json", False), ("text/plain", False)],
)
def test_only_an_event_stream_label_is_taken_at_its_word(core: Core, content_type: str, expected: bool) -> None:
    assert core.relay.is_event_stream(content_type) is expected


@pytest.mark.parametrize(
    ("head", "at_eof", "kind"),
    [
        (b"", False, None),
        (b"", True, EMPTY),
        (b" \r\n", True, EMPTY),
        (b"da", False, None),
        (b"da", True, TEXT),
        (b"data: {}", False, SSE),
        (b"\xef\xbb\xbfdata:", False, SSE),
        (b": keep-alive", False, SSE),
        (b"event: x", False, SSE),
        (b'\n {"id"', False, JSON),
        (b"<html>", False, HTML),
        (b"Internal Server Error", False, TEXT),
        (b" " * 70_000, False, TEXT),
    ],
)
def test_sniff(core: Core, head: bytes, at_eof: bool, kind: str | None) -> None:
    assert core.relay.sniff(head, at_eof) == kind
