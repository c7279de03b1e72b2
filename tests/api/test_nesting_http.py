"""Deeply nested request bodies over HTTP: a 400 naming the problem on every endpoint, never a 500 or a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from ccproxy.app import CCProxyApp
from ccproxy.core.nesting import MAX_DEPTH, NESTING_MESSAGE
from tests.api.test_messages_http import assert_anthropic_error, completion, post, sent_body
from tests.support.mock_upstream import MockUpstream

HOSTILE_DEPTH = 50_000
MESSAGES = "/v1/messages"
COUNT = "/v1/messages/count_tokens"
ENDPOINTS = [(MESSAGES, False), (MESSAGES, True), (COUNT, False)]
HEAD = '{"model":"claude-opus-4-8","max_tokens":100,"messages":[{"role":"user","content":"hi"}]'


def arrays(levels: int) -> str:
    return "[" * levels + "]" * levels


def objects(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def raw_body(stream: bool, place: str, deep: str) -> bytes:
    """A body, written as text (the standard json module cannot write it), with `deep` at one place."""
    tool_history = (
        ',"messages":[{"role":"user","content":"go"},'
        '{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Deep","input":{"x":' + deep + "}}]},"
        '{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"}]}]'
    )
    places = {
        "top level": ',"anything":' + deep,
        "tool schema": ',"tools":[{"name":"Deep","input_schema":{"type":"object","properties":{"x":' + deep + "}}}]",
        "tool input": tool_history,
        "system block": ',"system":[{"type":"text","text":"s","extra":' + deep + "}]",
    }
    # The last "messages" key wins in JSON objects, so the tool history replaces the head's messages.
    return (HEAD + places[place] + f',"stream":{json.dumps(stream)}' + "}").encode()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize(("path", "stream"), ENDPOINTS)
@pytest.mark.parametrize("place", ["top level", "tool schema", "tool input", "system block"])
@pytest.mark.parametrize("deep", [arrays(HOSTILE_DEPTH), objects(HOSTILE_DEPTH), arrays(1_100), objects(600)])
async def test_hostile_nesting_is_a_400_naming_the_problem(
    app: CCProxyApp, caplog: pytest.LogCaptureFixture, path: str, stream: bool, place: str, deep: str
) -> None:
    caplog.set_level(logging.INFO)
    response = await post(app, raw_body(stream, place, deep), path)
    body = assert_anthropic_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == NESTING_MESSAGE
    assert response.headers["content-type"].startswith("application/json")
    assert errors_logged(caplog) == []
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(("path", "stream"), ENDPOINTS)
async def test_one_level_beyond_the_maximum_is_refused(app: CCProxyApp, path: str, stream: bool) -> None:
    # The body is level 1 and "anything" holds the arrays: MAX_DEPTH arrays make MAX_DEPTH + 1 levels.
    response = await post(app, raw_body(stream, "top level", arrays(MAX_DEPTH)), path)
    assert assert_anthropic_error(response, 400, "invalid_request_error")["error"]["message"] == NESTING_MESSAGE


async def test_a_deep_schema_within_the_maximum_reaches_the_upstream(
    app: CCProxyApp, upstream: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    # body(1) tools(2) tool(3) input_schema(4) properties(5) x(6): the arrays fill the rest up to the maximum.
    raw = raw_body(False, "tool schema", arrays(MAX_DEPTH - 5))
    upstream.post(upstream.chat_url, payload=completion())
    response = await post(app, raw, MESSAGES)
    assert response.status == 200, response.text
    parameters = sent_body(upstream)["tools"][0]["function"]["parameters"]
    assert parameters["properties"]["x"] == json.loads(arrays(MAX_DEPTH - 5))
    counted = await post(app, raw, COUNT)
    assert counted.status == 200 and counted.json["input_tokens"] > 0
    assert errors_logged(caplog) == []


async def test_a_deeply_nested_claude_code_user_id_is_just_an_opaque_string(
    app: CCProxyApp, upstream: MockUpstream
) -> None:
    # metadata.user_id is a JSON string Claude Code fills; the converter parses it, and must survive any string.
    upstream.post(upstream.chat_url, payload=completion())
    request: dict[str, Any] = {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "{" + arrays(HOSTILE_DEPTH)},
    }
    response = await post(app, request, MESSAGES)
    assert response.status == 200, response.text
    assert len(sent_body(upstream)["user"]) <= 64
