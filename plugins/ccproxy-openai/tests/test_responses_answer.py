"""OpenAI Responses API answers and streams -> Anthropic messages and events (responses_answer.py,
responses_stream.py), from the hand-written fixtures in tests/fixtures/responses/; and which backends use the wire."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest

from ccproxy import ProviderConfig, ProxyError, UpstreamError
from ccproxy.wire import ResponseContext
from ccproxy_openai import OpenAIOptions, OpenAIProvider
from ccproxy_openai.responses import ResponsesWire
from ccproxy_openai.responses_answer import SIGNATURE_PREFIX, encrypted_reasoning
from tests.support.anthropic_stream import accumulate, check_stream

FIXTURES = Path(__file__).parent / "fixtures" / "responses"
WIRE = ResponsesWire()
LONG_NAME = "mcp__a_server_with_a_long_name__" + "a_tool_whose_name_is_longer_than_sixty_four_characters"


def context() -> ResponseContext:
    ctx = ResponseContext(message_id="msg_test", model="claude-sonnet-4-5", input_tokens_estimate=7)
    ctx.tool_names.to_upstream(LONG_NAME)
    return ctx


def stream_events(name: str) -> list[dict[str, Any]]:
    """The upstream events of a fixture, as the SSE decoder hands their data over."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


def translate(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = WIRE.stream_translator(context())
    events = translator.start()
    try:
        for chunk in chunks:
            events += translator.feed(chunk)
        events += translator.end_of_body()
    except ProxyError as error:
        events += translator.error_events(error)
    return events


def streamed(name: str) -> dict[str, Any]:
    events = translate(stream_events(name))
    check_stream(events)
    return accumulate(events)


# ------------------------------------------------------------------------------------------ non-stream


def test_a_response_becomes_thinking_text_and_tool_use() -> None:
    answer = json.loads((FIXTURES / "reasoning_tool.json").read_text(encoding="utf-8"))
    message = WIRE.convert_response(answer, context())
    assert message["content"] == [
        {
            "type": "thinking",
            "thinking": "**Reading the file**\n\nI need its contents.",
            "signature": SIGNATURE_PREFIX + answer["output"][0]["encrypted_content"],
        },
        {"type": "text", "text": "Let me read it."},
        {"type": "tool_use", "id": "call_Read0003", "name": "Read", "input": {"file_path": "/tmp/a.txt"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["id"] == "msg_test"
    # input_tokens counts cached tokens apart, as Anthropic does.
    assert message["usage"] == {
        "input_tokens": 2311 - 1920,
        "output_tokens": 412,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1920,
    }


def test_tool_names_are_mapped_back() -> None:
    ctx = context()
    call = {"type": "function_call", "call_id": "call_1", "name": ctx.tool_names.to_upstream(LONG_NAME)}
    message = WIRE.convert_response({"status": "completed", "output": [{**call, "arguments": "{}"}]}, ctx)
    assert message["content"][0]["name"] == LONG_NAME


def test_an_incomplete_response_stops_at_max_tokens() -> None:
    answer = {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}, "output": []}
    message = WIRE.convert_response(answer, context())
    assert message["stop_reason"] == "max_tokens" and message["content"] == [{"type": "text", "text": ""}]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ({"code": "rate_limit_exceeded", "message": "Slow down"}, 429),
        ({"code": "invalid_prompt", "message": "Refused"}, 400),
        ({"code": "server_error", "message": "Boom"}, 502),
    ],
)
def test_a_failed_response_is_an_upstream_error(error: dict[str, Any], status: int) -> None:
    with pytest.raises(UpstreamError) as caught:
        WIRE.convert_response({"status": "failed", "error": error, "output": []}, context())
    assert caught.value.status == status and caught.value.message == error["message"]


@pytest.mark.parametrize(
    "answer", [{"status": "completed"}, {"output": "nope"}, {"output": [{"type": "function_call"}]}]
)
def test_an_unreadable_response_is_a_502(answer: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as caught:
        WIRE.convert_response(answer, context())
    assert caught.value.status == 502


# ------------------------------------------------------------------------------------------ streams


def test_a_stream_with_reasoning_and_text() -> None:
    message = streamed("reasoning_text.sse")
    thinking, text = message["content"]
    assert thinking["thinking"] == (
        "**Checking the greeting**\n\nThe user wants a greeting in two languages.\n\n"
        "**Choosing words**\n\nGerman and Chinese it is."
    )
    assert (
        encrypted_reasoning(thinking["signature"])
        == "gAAAAABpK3x9Qm5vdEFSZWFsU2VjcmV0X2J1dF9zaGFwZWRfbGlrZV9vbmU9PQ-_9x"
    )
    assert text == {"type": "text", "text": "Grüße aus Köln — 你好，世界! 👋"}
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["cache_read_input_tokens"] == 1920 and message["usage"]["input_tokens"] == 391


@pytest.mark.parametrize("name", ["reasoning_text.sse", "parallel_tools.sse"])
def test_a_stream_leaves_no_reference_cycle_for_the_garbage_collector(name: str) -> None:
    """A translator is freed by reference counting when its stream is done: one that kept its own bound methods
    in a dispatch table was a cycle, left with everything it held for the collector."""
    chunks = stream_events(name)
    check_stream(translate(chunks))  # first use: what modules set up once is not the translator's
    gc.collect()
    gc.disable()
    try:
        events = translate(chunks)
        assert gc.collect() == 0
    finally:
        gc.enable()
    check_stream(events)


def test_a_stream_with_parallel_function_calls() -> None:
    message = streamed("parallel_tools.sse")
    assert [block["type"] for block in message["content"]] == ["thinking", "tool_use", "tool_use"]
    assert message["content"][0]["thinking"] == "" and message["content"][0]["signature"].startswith(SIGNATURE_PREFIX)
    assert [(block["id"], block["name"], block["input"]) for block in message["content"][1:]] == [
        ("call_Add0001", "add", {"a": 2, "b": 3}),
        ("call_Mul0002", "multiply", {"a": 4, "b": 5}),
    ]
    assert message["stop_reason"] == "tool_use"


def test_an_incomplete_stream_stops_at_max_tokens() -> None:
    message = streamed("incomplete.sse")
    assert message["stop_reason"] == "max_tokens" and message["usage"]["output_tokens"] == 16


@pytest.mark.parametrize(
    ("name", "error_type", "message"),
    [
        ("failed.sse", "api_error", "The model produced invalid content."),
        ("error_event.sse", "rate_limit_error", "Rate limit reached for gpt-5.1 on tokens per min (TPM)."),
    ],
)
def test_failures_end_the_stream_with_an_error_event(name: str, error_type: str, message: str) -> None:
    events = translate(stream_events(name))
    assert events[-1] == {"type": "error", "error": {"type": error_type, "message": message}}


def test_an_error_event_nested_the_gateway_way() -> None:
    nested = {"type": "error", "error": {"code": "rate_limit_exceeded", "message": "Slow down"}}
    events = translate([nested])
    assert events[-1] == {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}


def test_items_without_deltas_are_filled_from_their_done_copies() -> None:
    chunks = [
        chunk
        for chunk in stream_events("reasoning_text.sse") + stream_events("parallel_tools.sse")[2:]
        if not chunk["type"].endswith(".delta") and chunk["type"] != "response.completed"
    ]
    chunks.append(stream_events("parallel_tools.sse")[-1])
    message = accumulate(translate(chunks))
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "thinking", "tool_use", "tool_use"]
    assert message["content"][1]["text"].startswith("Grüße") and message["content"][4]["input"] == {"a": 4, "b": 5}


def test_whitespace_before_a_tool_call_makes_no_text_block() -> None:
    added = {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "content": []}}
    delta = {"type": "response.output_text.delta", "output_index": 0, "delta": "\n\n"}
    done = {"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "content": []}}
    calls = stream_events("parallel_tools.sse")[2:]
    message = accumulate(translate([added, delta, done, *calls]))
    assert [block["type"] for block in message["content"]] == ["thinking", "tool_use", "tool_use"]


def test_broken_tool_arguments_are_an_error_unless_cut_at_the_limit() -> None:
    added, *_, done = [chunk for chunk in stream_events("parallel_tools.sse") if chunk.get("output_index") == 1]
    broken = {**done, "item": {**done["item"], "arguments": '{"a": 2'}}
    events = translate([added, broken])
    assert events[-1]["type"] == "error" and "not valid JSON" in events[-1]["error"]["message"]
    cut = {**broken, "item": {**broken["item"], "status": "incomplete"}}
    end = {
        "type": "response.incomplete",
        "response": {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}},
    }
    events = translate([added, cut, end])
    check_stream(events)
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert events[3]["delta"] == {"type": "input_json_delta", "partial_json": '{"a": 2'}


def test_a_body_that_ends_early_is_an_error() -> None:
    events = translate(stream_events("reasoning_text.sse")[:-1])
    assert events[-1]["type"] == "error" and "no response.completed" in events[-1]["error"]["message"]


# ------------------------------------------------------------------------------------------ which API


def provider(base_url: str = "https://api.openai.com/v1", **options: Any) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(base_url=base_url, api_key="sk-test-1234567", options=options))


@pytest.mark.parametrize(
    ("api", "model", "responses"),
    [
        ("chat", "gpt-5.1", False),
        ("responses", "gpt-4o", True),
        ("auto", "gpt-5.1", True),
        ("auto", "openai/gpt-5.2-codex", True),
        ("auto", "gpt-5", False),
        ("auto", "gpt-4o", False),
    ],
)
def test_the_api_option_chooses_the_wire(api: str, model: str, responses: bool) -> None:
    wire = provider(api=api).wire(model)
    assert (wire is not None) is responses
    if wire is not None:
        assert wire.path == "/responses"


def test_chat_completions_is_the_default_and_other_values_are_refused() -> None:
    assert provider().wire("gpt-5.1") is None
    assert OpenAIOptions.model_validate({"api": "responses"}).api == "responses"
    with pytest.raises(ValueError, match="api"):
        OpenAIOptions.model_validate({"api": "completions"})
