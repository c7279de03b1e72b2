"""Malformed upstream answers (issue 6 item 10): read where there is a sensible reading, else an UpstreamError 502
naming the problem; never a TypeError, AttributeError or KeyError out of the core (which became a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.errors import UpstreamError
from tests.support.anthropic_message import check_message
from tests.support.anthropic_stream import accumulate, check_stream


def completion(message: Any = None, finish: Any = "stop", **extra: Any) -> dict[str, Any]:
    if message is None:
        message = {"role": "assistant", "content": "Hi"}
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        **extra,
    }


# -- non-stream ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("usage", [[], [1], "12", 7, {"prompt_tokens": "many", "prompt_tokens_details": [3]}])
def test_usage_that_is_not_an_object_or_not_numbers_is_no_usage(core: Core, ctx: ResponseContext, usage: Any) -> None:
    message = core.response.convert_response(completion(usage=usage), ctx)
    check_message(message)
    assert message["usage"]["output_tokens"] == 0


@pytest.mark.parametrize("finish", [7, [], ["stop"], {"a": 1}, True])
def test_a_finish_reason_that_is_not_a_string_is_none(core: Core, ctx: ResponseContext, finish: Any) -> None:
    message = core.response.convert_response(completion(finish=finish), ctx)
    check_message(message)
    assert message["stop_reason"] == "end_turn"


@pytest.mark.parametrize("value", [["a"], "hello", 5, True])
def test_a_message_that_is_not_an_object_is_a_502_naming_it(core: Core, ctx: ResponseContext, value: Any) -> None:
    with pytest.raises(UpstreamError) as raised:
        core.response.convert_response(completion(value), ctx)
    assert raised.value.status == 502
    assert f"message is a {type(value).__name__}, not an object" in raised.value.message


@pytest.mark.parametrize(
    "message",
    [
        {"reasoning_details": [{"type": "reasoning.text", "text": 5, "signature": ["s"]}], "content": "x"},
        {"reasoning_details": "text", "reasoning_content": ["a"], "content": "x"},
        {"content": [{"type": "text", "text": 3}, "part", {"type": "text", "text": "ok"}]},
        {"refusal": {"a": 1}, "content": "x"},
        {"tool_calls": [{"id": 5, "function": {"name": ["Bash"], "arguments": {"a": 1}}}, "call", None]},
        {"tool_calls": {"id": "x"}, "function_call": "ls", "content": "x"},
    ],
)
def test_wrongly_typed_message_fields_are_skipped(core: Core, ctx: ResponseContext, message: dict[str, Any]) -> None:
    check_message(core.response.convert_response(completion(message), ctx))


def test_stop_reason_and_usage_take_anything(core: Core) -> None:
    assert core.usage.stop_reason(3, False) == "end_turn"
    assert core.usage.stop_reason(["length"], True) == "tool_use"
    assert core.usage.anthropic_usage([1], 5)["input_tokens"] == 5


# -- stream ----------------------------------------------------------------------------------------------------


def chunk(choice: Any, **extra: Any) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice], **extra}


MALFORMED_CHUNKS: list[dict[str, Any]] = [
    {"choices": "abc"},
    {"choices": {"0": {}}},
    {"choices": 5},
    chunk("choice"),
    chunk(None),
    chunk({"index": 0, "delta": ["a"]}),
    chunk({"index": 0, "delta": "text"}),
    chunk({"index": 0, "delta": {}, "finish_reason": 3}),
    chunk({"index": 0, "delta": {}, "finish_reason": ["stop"]}),
    chunk({"index": 0, "delta": {"content": 5}}),
    chunk({"index": 0, "delta": {"content": [{"type": "text", "text": 7}]}}),
    chunk({"index": 0, "delta": {"refusal": ["no"]}}),
    chunk({"index": 0, "delta": {"reasoning_content": {"a": 1}}}),
    chunk({"index": 0, "delta": {"reasoning_details": {"type": "reasoning.text"}}}),
    chunk({"index": 0, "delta": {"reasoning_details": [{"type": "reasoning.text", "text": 1, "signature": 2}]}}),
    chunk({"index": 0, "delta": {"tool_calls": "call"}}),
    chunk({"index": 0, "delta": {"tool_calls": [None, 3, "x"]}}),
    chunk({"index": 0, "delta": {"tool_calls": [{"index": 0, "id": 9, "function": "Bash"}]}}),
    chunk({"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": 4, "arguments": 1}}]}}),
    chunk({"index": 0, "delta": {"function_call": "ls"}}),
    chunk({"index": 0, "delta": {"content": "x"}}, usage=[1]),
]


@pytest.mark.parametrize("bad", MALFORMED_CHUNKS)
def test_malformed_chunks_do_not_break_the_stream(core: Core, ctx: ResponseContext, bad: dict[str, Any]) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start()
    events += translator.feed(chunk({"index": 0, "delta": {"content": "Hello"}}))
    events += translator.feed(bad)
    events += translator.feed(chunk({"index": 0, "delta": {"content": " world"}, "finish_reason": "stop"}))
    events += translator.finish()
    check_stream(events)
    assert accumulate(events)["content"][0]["text"].startswith("Hello")


@pytest.mark.parametrize("bad", MALFORMED_CHUNKS)
def test_malformed_chunks_while_a_tool_call_is_open_write_the_bytes_of_feed(
    core: Core, ctx: ResponseContext, bad: dict[str, Any]
) -> None:
    by_dicts, by_bytes = core.stream.StreamTranslator(ctx), core.stream.StreamTranslator(ctx)
    by_dicts.start(), by_bytes.start()
    opening = chunk({"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}})
    for item in (opening, bad):
        assert by_bytes.feed_sse(item) == core.sse.encode_events(by_dicts.feed(item))
