"""`<think>...</think>` in content -> thinking blocks: the splitter, the stream filter over the real translator (tags
split at every character), and whole messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.thinktags import ThinkTagFilter, ThinkTagSplitter, split_think_tags
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse

CTX = ResponseContext(message_id="msg_think", model="claude-sonnet-4-5")
TAGGED = "<think>\nThe user wants a greeting.\nSay hi.\n</think>\n\nHello there!"
CONSUMED = "The user wants a greeting.\nSay hi.\n</think>\n\nHello there!"
THOUGHT = "The user wants a greeting.\nSay hi."


def split(*pieces: str) -> list[tuple[str, str]]:
    """The splitter's output for `pieces`, neighbouring pieces of one kind joined."""
    splitter = ThinkTagSplitter()
    out = [piece for text in pieces for piece in splitter.feed(text)] + splitter.end()
    joined: list[tuple[str, str]] = []
    for kind, text in out:
        if joined and joined[-1][0] == kind:
            joined[-1] = (kind, joined[-1][1] + text)
        else:
            joined.append((kind, text))
    return joined


def cuts(text: str) -> list[tuple[str, str]]:
    return [(text[:at], text[at:]) for at in range(len(text) + 1)]


@pytest.mark.parametrize("text", [TAGGED, CONSUMED])
def test_a_think_section_and_the_answer_however_the_text_is_cut(text: str) -> None:
    for head, tail in cuts(text):
        assert split(head, tail) == [("thinking", THOUGHT), ("text", "Hello there!")], (head, tail)
    assert split(*text) == [("thinking", THOUGHT), ("text", "Hello there!")]  # one character at a time


def test_thinking_is_streamed_as_it_comes_once_the_opening_tag_is_seen() -> None:
    splitter = ThinkTagSplitter()
    assert splitter.feed("<thi") == []  # could still be the tag
    assert splitter.feed("nk>Let me see") == [("thinking", "Let me see")]
    assert splitter.feed(" more</thi") == [("thinking", " more")]  # the start of `</think>` is held
    assert splitter.feed("nk>Answer") == [("text", "Answer")]


def test_without_an_opening_tag_the_text_is_held_until_it_is_known_what_it_was() -> None:
    splitter = ThinkTagSplitter()
    assert splitter.feed("Plain answer, ") == []
    assert splitter.feed("no tags.") == []
    assert splitter.end() == [("text", "Plain answer, no tags.")]


def test_a_later_think_tag_is_text_and_blank_sections_make_no_block() -> None:
    assert split("Use <think> tags like this.") == [("text", "Use <think> tags like this.")]
    assert split("<think>\n\n</think>\n\n") == []
    assert split("<think>only thinking</think>  \n") == [("thinking", "only thinking")]
    assert split("   ") == []


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def upstream_chunks(pieces: list[str], *, tool: bool) -> list[dict[str, Any]]:
    chunks = [chunk({"content": piece}) for piece in pieces if piece]
    if tool:
        call = {"index": 0, "id": "call_1", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}
        chunks.append(chunk({"tool_calls": [call]}))
    chunks.append(chunk({}, "tool_calls" if tool else "stop"))
    chunks.append({"id": "c", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 7}})
    return chunks


def filtered(core: Core, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The translator's events for `chunks`, through a ThinkTagFilter the way the filter stage runs it."""
    translator = core.stream.StreamTranslator(CTX)
    think = ThinkTagFilter()
    events: list[dict[str, Any]] = []
    produced = translator.start() + [event for c in chunks for event in translator.feed(c)] + translator.finish()
    for event in produced:
        if event["type"] in ("message_delta", "message_stop") and not any(e["type"] == "message_delta" for e in events):
            events.extend(think.flush())
        events.extend(think.feed(event))
    return events


@pytest.mark.parametrize("text", [TAGGED, CONSUMED])
def test_a_stream_becomes_thinking_text_and_tool_blocks_for_every_cut(core: Core, text: str) -> None:
    for head, tail in cuts(text):
        events = filtered(core, upstream_chunks([head, tail], tool=True))
        check_stream(events)
        message = accumulate(events)
        assert message["content"] == [
            {"type": "thinking", "thinking": THOUGHT, "signature": ""},
            {"type": "text", "text": "Hello there!"},
            {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
        ], (head, tail)
        assert message["stop_reason"] == "tool_use"


def test_a_think_section_right_before_a_tool_call_keeps_the_numbering(core: Core) -> None:
    events = filtered(core, upstream_chunks(["<think>run ls</think>", "\n\n"], tool=True))
    check_stream(events)
    assert [block["type"] for block in accumulate(events)["content"]] == ["thinking", "tool_use"]
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0, 1]


def test_an_empty_think_section_alone_leaves_no_block(core: Core) -> None:
    events = filtered(core, upstream_chunks(["<think>\n\n</think>\n\n"], tool=True))
    check_stream(events)
    assert [block["type"] for block in accumulate(events)["content"]] == ["tool_use"]
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0]


def test_a_stream_without_tags_is_text(core: Core) -> None:
    events = filtered(core, upstream_chunks(["Just ", "an answer."], tool=False))
    check_stream(events)
    assert accumulate(events)["content"] == [{"type": "text", "text": "Just an answer."}]


def test_reasoning_the_server_already_separated_is_left_alone(core: Core) -> None:
    chunks = [chunk({"reasoning_content": "parsed by vLLM"}), *upstream_chunks(["<think> is a tag"], tool=False)]
    events = filtered(core, chunks)
    check_stream(events)
    assert accumulate(events)["content"] == [
        {"type": "thinking", "thinking": "parsed by vLLM", "signature": ""},
        {"type": "text", "text": "<think> is a tag"},
    ]


def test_a_whole_message_is_split_the_same_way(core: Core) -> None:
    for text in (TAGGED, CONSUMED):
        completion = {
            "id": "c",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7},
        }
        message = split_think_tags(core.response.convert_response(completion, CTX))
        assert message["content"] == [
            {"type": "thinking", "thinking": THOUGHT, "signature": ""},
            {"type": "text", "text": "Hello there!"},
        ]
        # Replayed as a stream (an upstream that ignored `stream: true`) the filter gives the same blocks.
        replayed = core.relay.StreamRelay(CTX, filters=[ThinkTagFilter()]).replay(
            core.response.convert_response(completion, CTX)
        )
        events = parse_sse(replayed)
        check_stream(events)
        assert accumulate(events)["content"] == message["content"]


def test_a_message_whose_first_block_is_no_text_is_unchanged() -> None:
    message = {"content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}], "stop_reason": "tool_use"}
    assert split_think_tags(message) is message
    assert json.dumps(split_think_tags({"content": []})) == '{"content": []}'
