"""Streamed answers: text, thinking and tool arguments redacted as they pass, split secrets included, with the
event grammar intact and tokens flowing."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from guardrails_support import (
    SECRETS,
    Audit,
    message_start,
    pieces_of,
    run_filter,
    stream_filter,
    text_stream,
    tool_stream,
    whole_stream,
)

from ccproxy import ProxyError
from tests.support.anthropic_stream import accumulate, check_stream

R = "[REDACTED]"
KEY = SECRETS["openai"]
REDACT: dict[str, Any] = {"redact": {}}


def answer(events: list[dict[str, Any]]) -> dict[str, Any]:
    check_stream(events)
    return accumulate(events)


def test_a_secret_split_at_any_point_of_a_text_block_is_redacted() -> None:
    text = f"Your key: {KEY}. Keep it safe."
    for cut in range(1, len(text)):
        events = run_filter(stream_filter(REDACT), whole_stream(text_stream([text[:cut], text[cut:]])))
        assert answer(events)["content"] == [{"type": "text", "text": f"Your key: {R}. Keep it safe."}]
        assert KEY[:12] not in json.dumps(events)


def test_a_secret_in_many_small_deltas_is_redacted() -> None:
    text = f"a {SECRETS['anthropic']} b {SECRETS['private_key']} c"
    events = run_filter(stream_filter(REDACT), whole_stream(text_stream(pieces_of(text, range(0, len(text), 3)))))
    assert answer(events)["content"][0]["text"] == f"a {R} b {R} c"


def test_tool_arguments_split_anywhere_still_join_into_valid_json() -> None:
    arguments = json.dumps({"command": f"curl -H 'x-api-key: {KEY}' \"https://x\"\n", "n": 1})
    for cut in range(1, len(arguments)):
        stream = whole_stream(tool_stream([arguments[:cut], arguments[cut:]]), stop_reason="tool_use")
        events = run_filter(stream_filter(REDACT), stream)
        block = answer(events)["content"][0]  # accumulate parses the joined partial_json
        assert block["input"] == {"command": f"curl -H 'x-api-key: {R}' \"https://x\"\n", "n": 1}


def test_thinking_is_released_before_its_signature() -> None:
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    start["content_block"]["signature"] = ""
    deltas = [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": piece}}
        for piece in ("I will use ", KEY[:10], KEY[10:])
    ]
    signature = {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}
    stop = {"type": "content_block_stop", "index": 0}
    events = run_filter(stream_filter(REDACT), whole_stream([start, *deltas, signature, stop], text_stream(["ok"], 1)))
    message = answer(events)
    assert message["content"][0] == {"type": "thinking", "thinking": f"I will use {R}", "signature": "s"}
    kinds = [event["delta"]["type"] for event in events if event["type"] == "content_block_delta"]
    assert kinds.index("signature_delta") > max(i for i, kind in enumerate(kinds) if kind == "thinking_delta")


def test_tokens_keep_flowing_when_nothing_could_match() -> None:
    pieces = ["Hello", ", ", "world", ". ", "All ", "good", "!"]
    the_filter = stream_filter(REDACT)
    for event in [message_start(), *text_stream(pieces)[:1]]:
        the_filter.feed(event)
    for piece in pieces:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        assert the_filter.feed(delta) == [delta]  # passed on as it came, in the same call


def test_held_text_is_released_before_content_block_stop() -> None:
    the_filter = stream_filter(REDACT)
    the_filter.feed(message_start())
    the_filter.feed(text_stream([])[0])
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "see sk"}}
    assert the_filter.feed(delta)[0]["delta"]["text"] == "see "
    assert the_filter.feed({"type": "content_block_stop", "index": 0}) == [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "sk"}},
        {"type": "content_block_stop", "index": 0},
    ]


def test_each_block_with_redactions_is_one_audit_event() -> None:
    audit = Audit()
    blocks = [text_stream([f"x {KEY} y {KEY}"]), tool_stream([json.dumps({"k": SECRETS["github"]})], 1)]
    events = run_filter(stream_filter(REDACT, audit, "req_abc"), whole_stream(*blocks, text_stream(["clean"], 2)))
    check_stream(events)
    assert [(e.request_id, e.rule, e.action, e.direction, e.count, e.labels) for e in audit.events] == [
        ("req_abc", "redact", "redact", "response", 2, ("openai",)),
        ("req_abc", "redact", "redact", "response", 1, ("github",)),
    ]


def test_a_block_rule_on_answers_ends_the_stream_before_the_match_is_sent() -> None:
    audit = Audit()
    the_filter = stream_filter({"block": {"patterns": ["(?i)nightfall"], "directions": ["response"]}}, audit)
    sent: list[dict[str, Any]] = []
    with pytest.raises(ProxyError, match="Answer withheld by guardrail 'block'") as refused:
        for event in whole_stream(text_stream(["Operation Night", "fall starts"])):
            sent += the_filter.feed(event)
    assert refused.value.status == 400
    assert "fall" not in json.dumps(sent) and "Night" not in json.dumps(sent)
    assert [event.action for event in audit.events] == ["block"]


def test_flush_releases_a_block_that_never_closed() -> None:
    the_filter = stream_filter(REDACT)
    for event in [message_start(), *text_stream(["almost sk-pro"])[:2]]:
        the_filter.feed(event)
    assert the_filter.flush() == [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "sk-pro"}}
    ]


SLOW = {"slow": {"kind": "redact", "detectors": [], "patterns": ["(a|aa)+$"], "regex_timeout": 0.05}}


def test_a_failing_filter_fails_closed_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    the_filter = stream_filter(SLOW)
    with caplog.at_level(logging.ERROR, "ccproxy.guardrails"), pytest.raises(ProxyError) as refused:
        run_filter(the_filter, whole_stream(text_stream(["fine ", "a" * 60 + "!"])))
    assert (refused.value.status, refused.value.error_type) == (500, "api_error")
    assert caplog.records[0].exc_info is None


def test_a_failing_filter_that_fails_open_passes_the_rest_unchanged() -> None:
    audit = Audit()
    the_filter = stream_filter({"slow": {**SLOW["slow"], "fail_open": True}}, audit)
    text = ["fine ", "a" * 60 + "!", " rest"]
    events = run_filter(the_filter, whole_stream(text_stream(text), tool_stream(['{"a": "aaa"}'], 1)))
    message = answer(events)
    assert message["content"][0]["text"] == "".join(text)
    assert message["content"][1]["input"] == {"a": "aaa"}
    assert [event.action for event in audit.events] == ["error"]


def test_tool_arguments_of_a_failing_filter_that_fails_open_stay_valid_json() -> None:
    the_filter = stream_filter({"slow": {**SLOW["slow"], "fail_open": True}})
    fragments = ['{"x": "ok", "y": "', "a" * 60 + '!", "z": 1}']
    message = answer(run_filter(the_filter, whole_stream(tool_stream(fragments), stop_reason="tool_use")))
    assert message["content"][0]["input"] == {"x": "ok", "y": "a" * 60 + "!", "z": 1}
