"""StreamTranslator, one rule per test, each with a small hand-built chunk list (wire.md 4.10, 4.3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.errors import ProxyError, UpstreamError
from tests.core.conftest import INPUT_ESTIMATE, MESSAGE_ID, MODEL
from tests.support.anthropic_stream import GrammarChecker, accumulate, check_stream

Event = dict[str, Any]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """An OpenAI chat.completion.chunk for choice 0."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        **extra,
    }


def usage_chunk(prompt: int = 100, completion: int = 20, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, **extra},
    }


def text(value: str) -> dict[str, Any]:
    return chunk({"content": value})


def tool(index: int, call_id: str | None = None, name: str | None = None, args: str | None = None) -> dict[str, Any]:
    """One tool_calls entry; only the given parts are present, as in real fragments."""
    entry: dict[str, Any] = {"index": index}
    function: dict[str, Any] = {}
    if call_id is not None:
        entry["id"] = call_id
        entry["type"] = "function"
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    if function:
        entry["function"] = function
    return entry


def tools(*entries: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return chunk({"tool_calls": list(entries)}, finish)


def run(core: Core, chunks: list[dict[str, Any]], ctx: ResponseContext) -> list[Event]:
    """start + every chunk + finish, checked against the grammar and against `feed_sse`."""
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start()
    for item in chunks:
        events += translator.feed(item)
    events += translator.finish()
    check_stream(events)
    check_feed_sse(core, chunks, ctx)
    return events


def check_feed_sse(core: Core, chunks: list[dict[str, Any]], ctx: ResponseContext) -> None:
    """`feed_sse` writes, chunk by chunk, exactly the bytes of `feed`'s events (its fast paths skip the dicts)."""
    by_dicts, by_bytes = core.stream.StreamTranslator(ctx), core.stream.StreamTranslator(ctx)
    by_dicts.start(), by_bytes.start()
    for item in chunks:
        assert by_bytes.feed_sse(item) == core.sse.encode_events(by_dicts.feed(item)), item
    assert core.sse.encode_events(by_bytes.finish()) == core.sse.encode_events(by_dicts.finish())


def content(events: list[Event]) -> list[dict[str, Any]]:
    return list(accumulate(events)["content"])


def of_type(events: list[Event], kind: str) -> list[Event]:
    return [event for event in events if event["type"] == kind]


def deltas(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [event["delta"] for event in of_type(events, "content_block_delta") if event["delta"]["type"] == kind]


def message_delta(events: list[Event]) -> Event:
    (found,) = of_type(events, "message_delta")
    return found


# -- start --------------------------------------------------------------------------------------------------


def test_start_is_message_start_then_ping(core: Core, ctx: ResponseContext) -> None:
    events = core.stream.StreamTranslator(ctx).start()
    assert events == [
        {
            "type": "message_start",
            "message": {
                "id": MESSAGE_ID,
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": MODEL,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": INPUT_ESTIMATE,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        },
        {"type": "ping"},
    ]


def test_start_is_sent_once_even_if_feed_comes_first(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.feed(text("hi"))
    assert [event["type"] for event in events[:2]] == ["message_start", "ping"]
    events += translator.start() + translator.finish()
    check_stream(events)


# -- text ---------------------------------------------------------------------------------------------------


def test_text_is_one_block_of_text_deltas(core: Core, ctx: ResponseContext) -> None:
    events = run(core, [chunk({"role": "assistant", "content": ""}), text("Hel"), text("lo"), chunk({}, "stop")], ctx)
    assert content(events) == [{"type": "text", "text": "Hello"}]
    assert deltas(events, "text_delta") == [
        {"type": "text_delta", "text": "Hel"},
        {"type": "text_delta", "text": "lo"},
    ]
    assert message_delta(events)["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_empty_and_null_content_never_open_a_block(core: Core, ctx: ResponseContext) -> None:
    events = run(core, [chunk({"role": "assistant", "content": None}), text(""), chunk({}, "stop")], ctx)
    assert of_type(events, "content_block_start") == []
    assert message_delta(events)["delta"]["stop_reason"] == "end_turn"


def test_refusal_is_text(core: Core, ctx: ResponseContext) -> None:
    events = run(core, [chunk({"refusal": "I can't"}), chunk({"refusal": " help."}), chunk({}, "stop")], ctx)
    assert content(events) == [{"type": "text", "text": "I can't help."}]


def test_content_and_finish_in_one_chunk(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start() + translator.feed(chunk({"content": "Done."}, "stop"))
    # The block is closed at once; message_delta waits for usage.
    assert [event["type"] for event in events[2:]] == [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    ]
    events += translator.feed(usage_chunk())
    check_stream(events)
    assert content(events) == [{"type": "text", "text": "Done."}]


def test_content_parts_arrays_are_read_as_text(core: Core, ctx: ResponseContext) -> None:
    events = run(core, [chunk({"content": [{"type": "text", "text": "a"}, {"type": "image_url"}]}), text("b")], ctx)
    assert content(events) == [{"type": "text", "text": "ab"}]


def test_unknown_fields_and_other_choices_are_ignored(core: Core, ctx: ResponseContext) -> None:
    noisy = chunk({"content": "x", "role": "assistant", "annotations": []}, obfuscation="abc", system_fingerprint="fp")
    other = {"choices": [{"index": 1, "delta": {"content": "other choice"}, "finish_reason": "length"}]}
    both = {"choices": [{"index": 1, "delta": {"content": "no"}}, {"index": 0, "delta": {"content": "y"}}]}
    null_index = {"choices": [{"index": None, "delta": {"content": "z"}}], "usage": None}
    events = run(core, [noisy, other, both, null_index, chunk({}, "stop")], ctx)
    assert content(events) == [{"type": "text", "text": "xyz"}]
    assert message_delta(events)["delta"]["stop_reason"] == "end_turn"


# -- reasoning ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reasoning",
    [
        lambda value: {"reasoning_content": value},
        lambda value: {"reasoning": value},
        lambda value: {"reasoning_details": [{"type": "reasoning.text", "text": value, "index": 0}]},
        lambda value: {"reasoning_details": [{"type": "reasoning.summary", "summary": value, "index": 0}]},
    ],
    ids=["reasoning_content", "reasoning", "reasoning_details", "reasoning_summary"],
)
def test_reasoning_then_text(core: Core, ctx: ResponseContext, reasoning: Any) -> None:
    chunks = [chunk(reasoning("Let me ")), chunk(reasoning("think.")), text("Answer"), chunk({}, "stop")]
    events = run(core, chunks, ctx)
    assert content(events) == [
        {"type": "thinking", "thinking": "Let me think.", "signature": ""},
        {"type": "text", "text": "Answer"},
    ]
    assert [event["index"] for event in of_type(events, "content_block_start")] == [0, 1]


def test_openrouter_mirrored_reasoning_is_not_doubled(core: Core, ctx: ResponseContext) -> None:
    mirrored = {
        "content": "",
        "reasoning": "Hmm",
        "reasoning_details": [{"type": "reasoning.text", "text": "Hmm", "format": "anthropic-claude-v1", "index": 0}],
    }
    events = run(core, [chunk(mirrored), text("ok")], ctx)
    assert content(events)[0] == {"type": "thinking", "thinking": "Hmm", "signature": ""}


def test_late_reasoning_is_dropped_and_text_stays_one_block(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        chunk({"reasoning_content": "first"}),
        text("Hello"),
        chunk({"reasoning_content": "late"}),
        text(" world"),
        chunk({"reasoning_details": [{"type": "reasoning.text", "text": "later", "signature": "sig"}]}),
        chunk({}, "stop"),
    ]
    events = run(core, chunks, ctx)
    assert content(events) == [
        {"type": "thinking", "thinking": "first", "signature": ""},
        {"type": "text", "text": "Hello world"},
    ]
    assert deltas(events, "signature_delta") == []


def test_reasoning_after_a_tool_call_is_dropped(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        tools(tool(0, "call_1", "f", "{}")),
        chunk({"reasoning_content": "late"}),
        chunk({}, "tool_calls"),
    ]
    assert [block["type"] for block in content(run(core, chunks, ctx))] == ["tool_use"]


def test_signature_delta_only_for_a_real_signature(core: Core, ctx: ResponseContext) -> None:
    detail = {"type": "reasoning.text", "format": "anthropic-claude-v1", "index": 0}
    chunks = [
        chunk({"reasoning_details": [{**detail, "text": "Thinking"}]}),
        chunk({"reasoning_details": [{**detail, "text": "", "signature": "EqQBCkgI"}]}),
        text("Hi"),
    ]
    events = run(core, chunks, ctx)
    assert deltas(events, "signature_delta") == [{"type": "signature_delta", "signature": "EqQBCkgI"}]
    # Just before the thinking block's stop.
    position = events.index({"type": "content_block_delta", "index": 0, "delta": deltas(events, "signature_delta")[0]})
    assert events[position + 1] == {"type": "content_block_stop", "index": 0}
    assert content(events)[0] == {"type": "thinking", "thinking": "Thinking", "signature": "EqQBCkgI"}


@pytest.mark.parametrize(
    "delta",
    [
        {"reasoning_content": "plain"},
        {"reasoning_details": [{"type": "reasoning.text", "text": "plain", "index": 0}]},
        {"reasoning_details": [{"type": "reasoning.text", "text": "plain", "signature": "", "index": 0}]},
        {"reasoning_details": [{"type": "reasoning.text", "text": "plain", "signature": None, "index": 0}]},
    ],
    ids=["reasoning_content", "no_signature", "empty_signature", "null_signature"],
)
def test_no_signature_delta_without_a_real_signature(core: Core, ctx: ResponseContext, delta: dict[str, Any]) -> None:
    events = run(core, [chunk(delta), text("x")], ctx)
    assert deltas(events, "signature_delta") == []
    assert content(events)[0] == {"type": "thinking", "thinking": "plain", "signature": ""}


def test_each_reasoning_detail_index_is_its_own_thinking_block(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        chunk({"reasoning_details": [{"type": "reasoning.text", "text": "one", "index": 0}]}),
        chunk({"reasoning_details": [{"type": "reasoning.text", "signature": "s1", "index": 0}]}),
        chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque", "index": 1}]}),
        chunk({"reasoning_details": [{"type": "reasoning.text", "text": "two", "signature": "s2", "index": 2}]}),
        text("x"),
    ]
    assert content(run(core, chunks, ctx)) == [
        {"type": "thinking", "thinking": "one", "signature": "s1"},
        {"type": "thinking", "thinking": "two", "signature": "s2"},
        {"type": "text", "text": "x"},
    ]


# -- tool calls ---------------------------------------------------------------------------------------------


def test_several_tool_calls_one_after_another(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        tools(tool(0, "call_a", "add", "")),
        tools(tool(0, args='{"a"')),
        tools(tool(0, args=": 2}")),
        tools(tool(1, "call_m", "multiply", "")),
        tools(tool(1, args='{"b": 3}')),
        chunk({}, "tool_calls"),
        usage_chunk(),
    ]
    events = run(core, chunks, ctx)
    assert content(events) == [
        {"type": "tool_use", "id": "call_a", "name": "add", "input": {"a": 2}},
        {"type": "tool_use", "id": "call_m", "name": "multiply", "input": {"b": 3}},
    ]
    # Each non-empty fragment is streamed as it comes.
    assert [delta["partial_json"] for delta in deltas(events, "input_json_delta")] == [
        '{"a"',
        ": 2}",
        '{"b": 3}',
    ]
    assert message_delta(events)["delta"]["stop_reason"] == "tool_use"


def test_several_tool_calls_in_one_chunk(core: Core, ctx: ResponseContext) -> None:
    chunks = [tools(tool(0, "c1", "add", '{"a":1}'), tool(1, "c2", "multiply", '{"a":2}'), finish="tool_calls")]
    events = run(core, chunks, ctx)
    assert content(events) == [
        {"type": "tool_use", "id": "c1", "name": "add", "input": {"a": 1}},
        {"type": "tool_use", "id": "c2", "name": "multiply", "input": {"a": 2}},
    ]


def test_interleaved_tool_indices_keep_each_call_whole(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        tools(tool(0, "c0", "read", "")),
        tools(tool(1, "c1", "write", "")),
        tools(tool(0, args='{"path": ')),
        tools(tool(1, args='{"path": "b", ')),
        tools(tool(0, args='"a"}')),
        tools(tool(1, args='"text": "t"}')),
        chunk({}, "tool_calls"),
    ]
    events = run(core, chunks, ctx)
    assert content(events) == [
        {"type": "tool_use", "id": "c0", "name": "read", "input": {"path": "a"}},
        {"type": "tool_use", "id": "c1", "name": "write", "input": {"path": "b", "text": "t"}},
    ]


def test_second_call_streams_as_soon_as_the_first_is_complete(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start()
    events += translator.feed(tools(tool(0, "c0", "a", '{"x"')))
    events += translator.feed(tools(tool(1, "c1", "b", '{"y": 1}')))
    assert len(of_type(events, "content_block_start")) == 1  # call 1 waits: call 0 is incomplete
    events += translator.feed(tools(tool(0, args=": 0}")))
    assert len(of_type(events, "content_block_start")) == 2
    assert of_type(events, "content_block_stop") == [{"type": "content_block_stop", "index": 0}]
    events += translator.finish()
    check_stream(events)
    assert [block["input"] for block in content(events)] == [{"x": 0}, {"y": 1}]


def test_arguments_before_id_and_name_are_buffered(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start()
    events += translator.feed(tools(tool(0, args='{"q": ')))
    events += translator.feed(tools(tool(0, name="search")))
    assert of_type(events, "content_block_start") == []
    events += translator.feed(tools(tool(0, call_id="call_s", args='"x"')))
    events += translator.feed(tools(tool(0, args="}")))
    events += translator.finish()
    check_stream(events)
    assert content(events) == [{"type": "tool_use", "id": "call_s", "name": "search", "input": {"q": "x"}}]
    assert [delta["partial_json"] for delta in deltas(events, "input_json_delta")] == ['{"q": "x"', "}"]


def test_tool_call_without_id_gets_a_generated_one(core: Core, ctx: ResponseContext) -> None:
    chunks = [tools(tool(0, name="ls", args="{}")), chunk({}, "tool_calls")]
    (block,) = content(run(core, chunks, ctx))
    assert block["id"].startswith("toolu_") and len(block["id"]) == len("toolu_") + 24
    assert block["name"] == "ls" and block["input"] == {}
    # Deterministic for the message, different per call.
    assert content(run(core, chunks, ctx))[0]["id"] == block["id"]
    two = [tools(tool(0, name="ls", args="{}")), tools(tool(1, name="ls", args="{}"))]
    first, second = content(run(core, two, ctx))
    assert first["id"] != second["id"]


def test_calls_without_ids_keep_their_order(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start()
    events += translator.feed(tools(tool(0, name="first", args="{}")))
    assert of_type(events, "content_block_start") == []  # its id might still come
    events += translator.feed(tools(tool(1, "call_2", "second", "{}")))
    # A later call has begun, so call 0 will get no id: it starts first, with a generated one.
    names = [event["content_block"]["name"] for event in of_type(events, "content_block_start")]
    assert names == ["first", "second"]
    events += translator.finish()
    check_stream(events)


def test_tool_ids_are_kept_as_the_upstream_sent_them(core: Core, ctx: ResponseContext) -> None:
    chunks = [tools(tool(0, "functions.weather:0", "weather", '{"city": "Rome"}'))]
    assert content(run(core, chunks, ctx))[0]["id"] == "functions.weather:0"


def test_long_tool_names_are_mapped_back(core: Core, ctx: ResponseContext) -> None:
    long_name = "mcp__some_server__" + "very_long_tool_name_" * 4
    names = ToolNameMap([long_name])
    upstream_name = names.to_upstream(long_name)
    assert upstream_name != long_name
    mapped = ResponseContext(message_id=MESSAGE_ID, model=MODEL, tool_names=names)
    events = run(core, [tools(tool(0, "c", upstream_name, "{}"), finish="tool_calls")], mapped)
    assert content(events)[0]["name"] == long_name


def test_text_then_tool_call(core: Core, ctx: ResponseContext) -> None:
    events = run(core, [text("Let me check."), tools(tool(0, "c", "f", '{"a": 1}')), chunk({}, "tool_calls")], ctx)
    assert [block["type"] for block in content(events)] == ["text", "tool_use"]


def test_text_after_an_incomplete_tool_call_waits_for_its_arguments(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        tools(tool(0, "c", "f", '{"a": ')),
        text("Note"),
        text("s"),
        tools(tool(0, args="1}")),
        text(" here"),
        chunk({}, "tool_calls"),
    ]
    events = run(core, chunks, ctx)
    assert content(events) == [
        {"type": "tool_use", "id": "c", "name": "f", "input": {"a": 1}},
        {"type": "text", "text": "Notes here"},
    ]


def test_tool_call_that_never_completes_is_closed_at_the_end(core: Core, ctx: ResponseContext) -> None:
    chunks = [tools(tool(0, "c", "f", '{"a": ')), tools(tool(1, "d", "g", "{}")), chunk({}, "length")]
    events = run(core, chunks, ctx)
    assert [event["content_block"]["id"] for event in of_type(events, "content_block_start")] == ["c", "d"]
    assert message_delta(events)["delta"]["stop_reason"] == "max_tokens"


def test_legacy_function_call_delta(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        chunk({"function_call": {"name": "lookup", "arguments": ""}}),
        chunk({"function_call": {"arguments": '{"id": 7}'}}),
        chunk({}, "function_call"),
    ]
    events = run(core, chunks, ctx)
    (block,) = content(events)
    assert block["name"] == "lookup" and block["input"] == {"id": 7} and block["id"].startswith("toolu_")
    assert message_delta(events)["delta"]["stop_reason"] == "tool_use"


def test_tool_calls_without_index(core: Core, ctx: ResponseContext) -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"n": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    events = run(core, [chunk({"tool_calls": calls}, "tool_calls")], ctx)
    assert [(block["id"], block["input"]) for block in content(events)] == [("a", {"n": 1}), ("b", {})]


def test_arguments_sent_as_an_object(core: Core, ctx: ResponseContext) -> None:
    calls = [{"index": 0, "id": "a", "function": {"name": "f", "arguments": {"n": 1}}}]
    assert content(run(core, [chunk({"tool_calls": calls})], ctx))[0]["input"] == {"n": 1}


# -- finish reasons -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "has_tool", "expected"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("tool_calls", True, "tool_use"),
        ("function_call", True, "tool_use"),
        ("content_filter", False, "refusal"),
        ("something_new", False, "end_turn"),
        ("stop", True, "tool_use"),
        ("length", True, "max_tokens"),
        (None, False, "end_turn"),
        (None, True, "tool_use"),
    ],
)
def test_stop_reason(core: Core, ctx: ResponseContext, finish: str | None, has_tool: bool, expected: str) -> None:
    chunks = [text("x")]
    if has_tool:
        chunks.append(tools(tool(0, "c", "f", "{}")))
    chunks.append(chunk({}, finish))
    assert message_delta(run(core, chunks, ctx))["delta"] == {"stop_reason": expected, "stop_sequence": None}


# -- usage --------------------------------------------------------------------------------------------------


def test_message_delta_is_held_until_the_usage_chunk(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start() + translator.feed(text("x")) + translator.feed(chunk({}, "stop"))
    assert of_type(events, "message_delta") == []
    assert not translator.done
    tail = translator.feed(usage_chunk(prompt=100, completion=20))
    assert [event["type"] for event in tail] == ["message_delta", "message_stop"]
    assert tail[0]["usage"] == {
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert translator.done
    assert translator.finish() == []
    assert translator.feed(text("more")) == []
    check_stream(events + tail)


def test_usage_in_the_finish_chunk_ends_the_message(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start() + translator.feed(text("x"))
    events += translator.feed(chunk({}, "stop", usage={"prompt_tokens": 9, "completion_tokens": 3}))
    assert events[-1] == {"type": "message_stop"}
    assert message_delta(events)["usage"]["output_tokens"] == 3


def test_usage_before_the_finish_reason_is_kept_until_the_end(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        text("x"),
        usage_chunk(prompt=10, completion=1),
        text("y"),
        usage_chunk(prompt=10, completion=2),
    ]
    events = run(core, [*chunks, chunk({}, "stop")], ctx)
    assert message_delta(events)["usage"]["output_tokens"] == 2
    assert content(events) == [{"type": "text", "text": "xy"}]


def test_cached_tokens_are_split_out_of_input_tokens(core: Core, ctx: ResponseContext) -> None:
    details = {"cached_tokens": 800, "cache_write_tokens": 150}
    events = run(core, [text("x"), chunk({}, "stop"), usage_chunk(1000, 20, prompt_tokens_details=details)], ctx)
    assert message_delta(events)["usage"] == {
        "input_tokens": 50,
        "output_tokens": 20,
        "cache_creation_input_tokens": 150,
        "cache_read_input_tokens": 800,
    }


def test_top_level_cache_creation_tokens(core: Core, ctx: ResponseContext) -> None:
    usage = usage_chunk(1000, 20, cache_creation_input_tokens=300, prompt_tokens_details={"cached_tokens": 0})
    events = run(core, [text("x"), chunk({}, "stop"), usage], ctx)
    assert message_delta(events)["usage"]["cache_creation_input_tokens"] == 300
    assert message_delta(events)["usage"]["input_tokens"] == 700


def test_no_usage_chunk_uses_the_estimate(core: Core, ctx: ResponseContext) -> None:
    events = run(core, [text("x"), chunk({}, "stop")], ctx)
    assert message_delta(events)["usage"] == {
        "input_tokens": INPUT_ESTIMATE,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


# -- end and errors -----------------------------------------------------------------------------------------


def test_finish_is_idempotent(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start() + translator.feed(text("x")) + translator.finish()
    assert translator.done
    assert translator.finish() == []
    check_stream(events)


def test_finish_closes_the_open_block(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    translator.start()
    translator.feed(text("x"))
    assert [event["type"] for event in translator.finish()] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_empty_stream_still_ends_properly(core: Core, ctx: ResponseContext) -> None:
    events = run(core, [], ctx)
    assert [event["type"] for event in events] == ["message_start", "ping", "message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        ({"code": 429, "message": "Rate limited upstream"}, 429, "rate_limit_error"),
        ({"code": 502, "message": "Provider returned error", "metadata": {"provider_name": None}}, 502, "api_error"),
        ({"code": "server_error", "message": "Boom"}, 502, "api_error"),
        ({"code": "503", "message": "No provider"}, 503, "overloaded_error"),
        ({"message": "no code"}, 502, "api_error"),
    ],
)
def test_in_stream_error_raises_and_becomes_an_error_event(
    core: Core, ctx: ResponseContext, error: dict[str, Any], status: int, error_type: str
) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start() + translator.feed(text("partial"))
    with pytest.raises(UpstreamError) as raised:
        translator.feed({"error": error})
    assert raised.value.status == status
    assert raised.value.error_type == error_type
    tail = translator.error_events(raised.value)
    assert tail == [{"type": "error", "error": {"type": error_type, "message": error["message"]}}]
    assert translator.done
    assert translator.finish() == []
    assert translator.error_events(raised.value) == []
    # An error ends the stream even with a block open.
    check_stream(events + tail)


def test_a_bare_error_object_in_a_stream_raises(core: Core, ctx: ResponseContext) -> None:
    """vLLM's `{"object": "error", ...}` error object as a chunk ends the stream with its error, where it used to be
    skipped as a chunk without choices (and `[DONE]` then closed an empty answer as if it were complete)."""
    translator = core.stream.StreamTranslator(ctx)
    translator.start()
    translator.feed(text("partial"))
    bare = {"object": "error", "message": "engine died", "type": "InternalServerError", "param": None, "code": 500}
    with pytest.raises(UpstreamError) as raised:
        translator.feed(bare)
    assert (raised.value.status, raised.value.message) == (500, "engine died")
    usage_only = {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 3}}
    assert core.stream.StreamTranslator(ctx).feed(usage_only)[0]["type"] == "message_start"  # not an error


def test_finish_reason_error_raises(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    translator.start()
    failing = chunk({}, "error")
    failing["choices"][0]["error"] = {"code": 503, "message": "Provider overloaded"}
    with pytest.raises(UpstreamError) as raised:
        translator.feed(failing)
    assert (raised.value.status, raised.value.message) == (503, "Provider overloaded")


def test_error_events_for_any_proxy_error(core: Core, ctx: ResponseContext) -> None:
    translator = core.stream.StreamTranslator(ctx)
    events = translator.start() + translator.error_events(ProxyError("Internal proxy error", status=500))
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "Internal proxy error"}}
    check_stream(events)


def test_events_serialise_to_json(core: Core, ctx: ResponseContext) -> None:
    events = run(
        core, [chunk({"reasoning_content": "r"}), text("t"), tools(tool(0, "c", "f", "{}")), usage_chunk()], ctx
    )
    assert json.loads(json.dumps(events)) == events


def test_grammar_checker_sees_every_event_in_order(core: Core, ctx: ResponseContext) -> None:
    # The same run checked incrementally, as a client reads it.
    checker = GrammarChecker()
    translator = core.stream.StreamTranslator(ctx)
    for event in translator.start() + translator.feed(text("a")) + translator.feed(chunk({}, "stop")):
        checker.event(event)
    assert not checker.finished
    for event in translator.finish():
        checker.event(event)
    checker.end()
