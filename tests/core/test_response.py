"""convert_response (non-stream OpenAI -> Anthropic) and accumulate_chunks (a chunk stream folded)."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.response import RAW_ARGUMENTS_KEY
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.errors import UpstreamError
from tests.core.conftest import INPUT_ESTIMATE, MESSAGE_ID, MODEL


def completion(message: dict[str, Any], finish: str | None = "stop", usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-x",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": usage,
    }


def call(call_id: str | None, name: str, arguments: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if call_id is not None:
        entry["id"] = call_id
    return entry


def test_text_message(core: Core, ctx: ResponseContext) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert core.response.convert_response(completion({"content": "Hi!"}, usage=usage), ctx) == {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "Hi!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "output_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def test_order_is_thinking_text_tool_use(core: Core, ctx: ResponseContext) -> None:
    message = {
        "tool_calls": [call("call_1", "weather", '{"city": "Paris"}')],
        "content": "Checking.",
        "reasoning_content": "User wants weather.",
    }
    result = core.response.convert_response(completion(message, "tool_calls"), ctx)
    assert result["content"] == [
        {"type": "thinking", "thinking": "User wants weather.", "signature": ""},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
    ]
    assert result["stop_reason"] == "tool_use"


def test_reasoning_details_with_signature_win_over_reasoning(core: Core, ctx: ResponseContext) -> None:
    message = {
        "content": "Hello",
        "reasoning": "mirror text",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "mirror text",
                "signature": "EvgC",
                "format": "anthropic-claude-v1",
            },
            {"type": "reasoning.encrypted", "data": "opaque"},
        ],
    }
    assert core.response.convert_response(completion(message), ctx)["content"] == [
        {"type": "thinking", "thinking": "mirror text", "signature": "EvgC"},
        {"type": "text", "text": "Hello"},
    ]


def test_reasoning_string(core: Core, ctx: ResponseContext) -> None:
    result = core.response.convert_response(completion({"content": "x", "reasoning": "because"}), ctx)
    assert result["content"][0] == {"type": "thinking", "thinking": "because", "signature": ""}


def test_refusal_is_text(core: Core, ctx: ResponseContext) -> None:
    result = core.response.convert_response(completion({"content": None, "refusal": "I can't."}, "content_filter"), ctx)
    assert result["content"] == [{"type": "text", "text": "I can't."}]
    assert result["stop_reason"] == "refusal"


def test_no_text_block_for_null_content_next_to_tools(core: Core, ctx: ResponseContext) -> None:
    message = {"content": None, "tool_calls": [call("c", "ls", "{}")]}
    assert [
        block["type"] for block in core.response.convert_response(completion(message, "tool_calls"), ctx)["content"]
    ] == ["tool_use"]


@pytest.mark.parametrize("value", [None, ""])
def test_empty_message_is_one_empty_text_block(core: Core, ctx: ResponseContext, value: str | None) -> None:
    assert core.response.convert_response(completion({"content": value}), ctx)["content"] == [
        {"type": "text", "text": ""}
    ]


def test_text_parts_content(core: Core, ctx: ResponseContext) -> None:
    message = {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    assert core.response.convert_response(completion(message), ctx)["content"] == [{"type": "text", "text": "ab"}]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("", {}),
        (None, {}),
        ("  ", {}),
        ({"a": 1}, {"a": 1}),
        ('"{\\"a\\": 1}"', {"a": 1}),
        ('{"a": ', {RAW_ARGUMENTS_KEY: '{"a": '}),
        ("[1, 2]", {RAW_ARGUMENTS_KEY: "[1, 2]"}),
        ("not json", {RAW_ARGUMENTS_KEY: "not json"}),
    ],
    ids=["object", "empty", "null", "blank", "dict", "double_encoded", "truncated", "array", "text"],
)
def test_tool_input(core: Core, arguments: Any, expected: dict[str, Any]) -> None:
    assert core.response.tool_input(arguments) == expected


def test_tool_call_without_id_gets_a_generated_one(core: Core, ctx: ResponseContext) -> None:
    message = {"tool_calls": [call(None, "ls", "{}"), call(None, "pwd", "{}")]}
    first, second = core.response.convert_response(completion(message, "tool_calls"), ctx)["content"]
    assert first["id"].startswith("toolu_") and second["id"].startswith("toolu_")
    assert first["id"] != second["id"]


def test_legacy_function_call(core: Core, ctx: ResponseContext) -> None:
    message = {"content": None, "function_call": {"name": "lookup", "arguments": '{"id": 7}'}}
    result = core.response.convert_response(completion(message, "function_call"), ctx)
    (block,) = result["content"]
    assert (block["name"], block["input"], result["stop_reason"]) == ("lookup", {"id": 7}, "tool_use")


def test_long_tool_names_are_mapped_back(core: Core) -> None:
    long_name = "mcp__server__" + "x" * 80
    names = ToolNameMap([long_name])
    ctx = ResponseContext(message_id=MESSAGE_ID, model=MODEL, tool_names=names)
    message = {"tool_calls": [call("c", names.to_upstream(long_name), "{}")]}
    assert core.response.convert_response(completion(message, "tool_calls"), ctx)["content"][0]["name"] == long_name


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
        ("x", "end_turn"),
    ],
)
def test_stop_reason(core: Core, ctx: ResponseContext, finish: str | None, expected: str) -> None:
    assert core.response.convert_response(completion({"content": "x"}, finish), ctx)["stop_reason"] == expected


def test_stop_with_tool_calls_is_tool_use(core: Core, ctx: ResponseContext) -> None:
    message = {"tool_calls": [call("c", "ls", "{}")]}
    assert core.response.convert_response(completion(message, "stop"), ctx)["stop_reason"] == "tool_use"


def test_usage_with_cache_tokens(core: Core, ctx: ResponseContext) -> None:
    usage = {
        "prompt_tokens": 2000,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 1500, "cache_write_tokens": 400},
    }
    assert core.response.convert_response(completion({"content": "x"}, usage=usage), ctx)["usage"] == {
        "input_tokens": 100,
        "output_tokens": 50,
        "cache_creation_input_tokens": 400,
        "cache_read_input_tokens": 1500,
    }


def test_missing_usage_uses_the_estimate(core: Core, ctx: ResponseContext) -> None:
    assert core.response.convert_response(completion({"content": "x"}), ctx)["usage"]["input_tokens"] == INPUT_ESTIMATE


def test_error_body_raises(core: Core, ctx: ResponseContext) -> None:
    with pytest.raises(UpstreamError) as raised:
        core.response.convert_response({"error": {"code": 402, "message": "Insufficient credits"}}, ctx)
    assert (raised.value.status, raised.value.error_type) == (402, "billing_error")


VLLM_BARE_ERROR = {
    "object": "error",
    "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the"
    " messages, 1000 in the completion). Please reduce the length of the messages or completion.",
    "type": "BadRequestError",
    "param": None,
    "code": 400,
}


def test_a_bare_error_object_raises_what_it_says(core: Core, ctx: ResponseContext) -> None:
    """vLLM's error body is an `{"object": "error", ...}` object, not wrapped in `error`: in a 200 body it is the
    upstream's error (here a context overflow, in Anthropic's words), not a completion without choices."""
    with pytest.raises(UpstreamError) as raised:
        core.response.convert_response(VLLM_BARE_ERROR, ctx)
    assert (raised.value.status, raised.value.error_type) == (400, "invalid_request_error")
    assert raised.value.message.startswith("input length and `max_tokens` exceed context limit: 4000 + 1000 > 4096")


def test_finish_reason_error_raises(core: Core, ctx: ResponseContext) -> None:
    body = completion({"content": ""}, "error")
    body["choices"][0]["error"] = {"code": 502, "message": "Provider died"}
    with pytest.raises(UpstreamError, match="Provider died"):
        core.response.convert_response(body, ctx)


def test_no_choices_is_a_bad_gateway(core: Core, ctx: ResponseContext) -> None:
    with pytest.raises(UpstreamError) as raised:
        core.response.convert_response({"id": "x", "choices": []}, ctx)
    assert raised.value.status == 502


# -- accumulate_chunks --------------------------------------------------------------------------------------


def delta_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "model": "m",
        "created": 1,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def test_accumulate_text_reasoning_and_usage(core: Core) -> None:
    chunks = [
        delta_chunk({"role": "assistant", "content": None, "reasoning_content": "a"}),
        delta_chunk({"reasoning_content": "b"}),
        delta_chunk({"content": "Hel"}),
        delta_chunk({"content": "lo"}, "stop"),
        {"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
    assert core.response.accumulate_chunks(chunks) == {
        "id": "c",
        "model": "m",
        "created": 1,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello", "reasoning_content": "ab"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }


def test_accumulate_reasoning_details_by_index(core: Core) -> None:
    detail = {"type": "reasoning.text", "format": "anthropic-claude-v1", "index": 0}
    chunks = [
        delta_chunk({"reasoning": "a", "reasoning_details": [{**detail, "text": "a"}]}),
        delta_chunk({"reasoning": "b", "reasoning_details": [{**detail, "text": "b"}]}),
        delta_chunk({"reasoning_details": [{**detail, "signature": "sig"}]}),
    ]
    message = core.response.accumulate_chunks(chunks)["choices"][0]["message"]
    assert message["reasoning"] == "ab"
    assert message["reasoning_details"] == [{**detail, "text": "ab", "signature": "sig"}]


def test_accumulate_tool_calls_by_index(core: Core) -> None:
    chunks = [
        delta_chunk({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "g"}}]}),
        delta_chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x"'}}]}),
        delta_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        delta_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}, "tool_calls"),
    ]
    completion_body = core.response.accumulate_chunks(chunks)
    assert completion_body["choices"][0]["message"]["tool_calls"] == [
        {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
        {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assert completion_body["choices"][0]["finish_reason"] == "tool_calls"


def test_accumulate_keeps_an_in_stream_error(core: Core, ctx: ResponseContext) -> None:
    chunks = [delta_chunk({"content": "x"}), {"error": {"code": 429, "message": "slow down"}}]
    folded = core.response.accumulate_chunks(chunks)
    assert folded["error"] == {"code": 429, "message": "slow down"}
    with pytest.raises(UpstreamError) as raised:
        core.response.convert_response(folded, ctx)
    assert raised.value.status == 429


def test_accumulate_then_convert(core: Core, ctx: ResponseContext) -> None:
    chunks = [
        delta_chunk({"reasoning_content": "think"}),
        delta_chunk({"content": "ok"}),
        delta_chunk({"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}]}),
        delta_chunk({}, "tool_calls"),
    ]
    assert core.response.convert_response(core.response.accumulate_chunks(chunks), ctx)["content"] == [
        {"type": "thinking", "thinking": "think", "signature": ""},
        {"type": "text", "text": "ok"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    ]
