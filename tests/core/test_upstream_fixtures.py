"""The repository's own upstream cases (tests/fixtures/upstream): each shows the rule it was written for.

test_recorded_streams.py runs every case through the generic checks (byte splits, grammar, stream == non-stream
conversion); here each case's own point is checked: interleaved tool arguments stay whole, cached tokens are split
out, reasoning becomes thinking with or without a real signature, in-band errors end the answer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.errors import UpstreamError
from tests.support.anthropic_stream import accumulate
from tests.support.fixtures import UPSTREAM
from tests.support.recorded import in_band_error
from tools.make_upstream_fixtures import fixture_files

from .test_recorded_streams import decode, translate


def load(core: Core, case: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """A case's request, its stream's chunks and its non-stream body (None when it has none)."""
    request = json.loads((UPSTREAM / f"{case}.request.json").read_text(encoding="utf-8"))
    payloads = decode(core, (UPSTREAM / f"{case}.sse").read_bytes())
    chunks = [json.loads(payload) for payload in payloads if payload != b"[DONE]"]
    completion_path = UPSTREAM / f"{case}.json"
    completion = json.loads(completion_path.read_text(encoding="utf-8")) if completion_path.exists() else None
    return request, chunks, completion


def context(request: dict[str, Any]) -> ResponseContext:
    names = [tool["function"]["name"] for tool in request.get("tools") or []]
    return ResponseContext(
        message_id="msg_fixture0123456789abcdef",
        model="claude-sonnet-4-5",
        input_tokens_estimate=9,
        tool_names=ToolNameMap(names),
    )


def both_ways(core: Core, case: str) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The stream's events, the message a client builds from them, and the non-stream conversion."""
    request, chunks, completion = load(core, case)
    assert completion is not None
    ctx = context(request)
    events = translate(core, chunks, ctx)
    return events, accumulate(events), core.response.convert_response(completion, ctx)


def usage_of(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    (usage,) = [chunk["usage"] for chunk in chunks if chunk.get("usage")]
    assert isinstance(usage, dict)
    return usage


def kinds(message: dict[str, Any]) -> list[str]:
    return [block["type"] for block in message["content"]]


def test_the_fixture_files_are_what_the_generator_writes() -> None:
    # tools/make_upstream_fixtures.py is their source: an edit by hand, or a stale or missing file, is caught here.
    expected = fixture_files()
    found = {
        path.relative_to(UPSTREAM).as_posix(): path.read_bytes().decode("utf-8")
        for path in UPSTREAM.rglob("*")
        if path.is_file() and path.name != "README.md"
    }
    assert sorted(found) == sorted(expected)
    for name, text in expected.items():
        assert found[name] == text, f"{name} differs from tools/make_upstream_fixtures.py: rerun it"


COMPLETE_CASES = [
    "openai/text",
    "openai/parallel_tools_interleaved",
    "openai/cached_usage",
    "openai/empty_choices",
    "deepseek/reasoning_tool",
    "openrouter/reasoning_anthropic",
]


@pytest.mark.parametrize("case", COMPLETE_CASES)
def test_the_stream_and_the_completion_give_the_same_message(core: Core, case: str) -> None:
    # Each case's stream and non-stream answer were written to say the same thing; the client must see that.
    _, streamed, converted = both_ways(core, case)
    assert streamed == converted


def test_multi_byte_text_arrives_whole(core: Core) -> None:
    _, chunks, _ = load(core, "openai/text")
    sent = "".join(choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"])
    assert any(len(char.encode()) == n for char in sent for n in (2, 3, 4))
    _, message, _ = both_ways(core, "openai/text")
    assert message["content"] == [{"type": "text", "text": sent}]
    assert message["stop_reason"] == "end_turn"


def test_interleaved_parallel_tool_calls_stay_whole(core: Core) -> None:
    _, chunks, completion = load(core, "openai/parallel_tools_interleaved")
    entries = [
        entry for chunk in chunks for choice in chunk["choices"] for entry in choice["delta"].get("tool_calls") or []
    ]
    order = [entry["index"] for entry in entries if entry.get("function", {}).get("arguments")]
    # The case is what it claims: argument fragments alternate between the calls, one chunk carries both.
    assert order != sorted(order) and set(order) == {0, 1}
    assert any(len(choice["delta"].get("tool_calls") or ()) == 2 for chunk in chunks for choice in chunk["choices"])
    events, message, _ = both_ways(core, "openai/parallel_tools_interleaved")
    assert completion is not None
    calls = completion["choices"][0]["message"]["tool_calls"]
    assert [(b["type"], b["id"], b["name"], b["input"]) for b in message["content"]] == [
        ("tool_use", call["id"], "get_weather", json.loads(call["function"]["arguments"])) for call in calls
    ]
    assert message["stop_reason"] == "tool_use"
    # Each block's partial JSON is its own call's arguments, in order: no fragment went to the other call.
    partial: dict[int, str] = {}
    for event in events:
        if event["type"] == "content_block_delta":
            partial[event["index"]] = partial.get(event["index"], "") + event["delta"]["partial_json"]
    assert [json.loads(text) for _, text in sorted(partial.items())] == [b["input"] for b in message["content"]]


def test_cached_tokens_are_split_out_of_the_input_tokens(core: Core) -> None:
    _, chunks, _ = load(core, "openai/cached_usage")
    (usage_chunk,) = [chunk for chunk in chunks if chunk.get("usage")]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0
    _, message, converted = both_ways(core, "openai/cached_usage")
    assert (
        message["usage"]
        == converted["usage"]
        == {
            "input_tokens": usage["prompt_tokens"] - cached,
            "output_tokens": usage["completion_tokens"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        }
    )


def test_empty_choices_chunks_are_passed_over(core: Core) -> None:
    _, chunks, _ = load(core, "openai/empty_choices")
    assert chunks[0]["choices"] == [] and "prompt_filter_results" in chunks[0]
    _, message, _ = both_ways(core, "openai/empty_choices")
    assert message["content"] == [{"type": "text", "text": "Hello from Azure!"}]
    assert message["usage"]["output_tokens"] == usage_of(chunks)["completion_tokens"]


def test_deepseek_reasoning_content_becomes_unsigned_thinking_before_text_and_tool(core: Core) -> None:
    _, chunks, completion = load(core, "deepseek/reasoning_tool")
    assert completion is not None
    events, message, _ = both_ways(core, "deepseek/reasoning_tool")
    assert kinds(message) == ["thinking", "text", "tool_use"]
    thinking, text, tool = message["content"]
    assert thinking == {
        "type": "thinking",
        "thinking": completion["choices"][0]["message"]["reasoning_content"],
        "signature": "",
    }
    assert text["text"] == completion["choices"][0]["message"]["content"]
    assert (tool["name"], tool["input"]) == ("Bash", {"command": "ls -la", "description": "List files"})
    # No real signature exists, so none is made up (a synthetic one would be rejected when replayed).
    assert not [e for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "signature_delta"]
    assert message["usage"]["cache_read_input_tokens"] == usage_of(chunks)["prompt_cache_hit_tokens"]


def test_openrouter_reasoning_details_become_signed_thinking_and_encrypted_stays_out(core: Core) -> None:
    _, chunks, completion = load(core, "openrouter/reasoning_anthropic")
    assert completion is not None
    details = completion["choices"][0]["message"]["reasoning_details"]
    (signed,) = [detail for detail in details if detail.get("signature")]
    (encrypted,) = [detail for detail in details if detail["type"] == "reasoning.encrypted"]
    events, message, _ = both_ways(core, "openrouter/reasoning_anthropic")
    assert kinds(message) == ["thinking", "text", "tool_use"]
    assert message["content"][0] == {"type": "thinking", "thinking": signed["text"], "signature": signed["signature"]}
    assert encrypted["data"] not in json.dumps(events)
    usage = usage_of(chunks)
    details_in = usage["prompt_tokens_details"]
    assert message["usage"] == {
        "input_tokens": usage["prompt_tokens"] - details_in["cached_tokens"] - details_in["cache_write_tokens"],
        "output_tokens": usage["completion_tokens"],
        "cache_creation_input_tokens": details_in["cache_write_tokens"],
        "cache_read_input_tokens": details_in["cached_tokens"],
    }


@pytest.mark.parametrize("case", ["openrouter/error_event", "openrouter/error_finish_reason"])
def test_an_in_band_error_fails_stream_and_completion_alike(core: Core, case: str) -> None:
    request, chunks, completion = load(core, case)
    assert completion is not None
    ctx = context(request)
    error = in_band_error(completion)
    assert error is not None and error == next(in_band_error(c) for c in chunks if in_band_error(c) is not None)
    with pytest.raises(UpstreamError) as from_completion:
        core.response.convert_response(completion, ctx)
    with pytest.raises(UpstreamError) as from_stream:
        translate(core, chunks, ctx)
    for caught in (from_completion.value, from_stream.value):
        assert error["message"] in caught.message
        assert caught.status == error["code"]
