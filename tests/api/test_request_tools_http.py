"""Client tools, strict tools and structured output through the HTTP app, against a scripted local upstream."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from tests.api.conftest import make_settings, sdk_like
from tests.api.test_messages_http import (
    HELLO,
    USAGE_CHUNK,
    assert_anthropic_error,
    chunk,
    parse_sse,
    post,
    sent_body,
    sse,
)
from tests.support.anthropic_stream import accumulate, check_stream
from tests.support.mock_upstream import MockUpstream
from tests.support.openai_rules import RequestValidator

BASH = {"type": "bash_20250124", "name": "bash"}
EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 2000}
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
    "additionalProperties": False,
}


def bash_call_completion(arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": arguments}}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-5",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


async def test_a_bash_call_round_trips_without_streaming(app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=bash_call_completion('{"command":"ls"}'))
    response = await post(app, {**HELLO, "tools": [BASH, EDITOR]})
    assert response.status == 200, response.text
    assert response.json["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "bash", "input": {"command": "ls"}}
    ]
    assert response.json["stop_reason"] == "tool_use"
    sent = sent_body(upstream)
    RequestValidator().validate(sent)
    names = [tool["function"]["name"] for tool in sent["tools"]]
    assert names == ["bash", "str_replace_based_edit_tool"]
    assert "2000 characters" in sent["tools"][1]["function"]["description"]


async def test_a_bash_call_round_trips_in_a_stream(app: CCProxyApp, upstream: MockUpstream) -> None:
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "bash", "arguments": ""}}
    body = sse(
        chunk({"tool_calls": [head]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"command":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"pwd"}'}}]}),
        chunk({}, "tool_calls"),
        USAGE_CHUNK,
    )
    upstream.post(upstream.chat_url, status=200, body=body, content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True, "tools": [BASH]})
    events = parse_sse(response.text)
    check_stream(events)
    message = accumulate(events)
    assert message["content"] == [{"type": "tool_use", "id": "call_1", "name": "bash", "input": {"command": "pwd"}}]
    assert message["stop_reason"] == "tool_use"


async def test_a_bash_history_is_replayed_as_a_function_call(app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=bash_call_completion("{}"))
    messages = [
        {"role": "user", "content": "list"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {"command": "ls"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
    ]
    response = await post(app, {**HELLO, "messages": messages, "tools": [BASH]})
    assert response.status == 200, response.text
    sent = sent_body(upstream)
    RequestValidator().validate(sent)
    assert sent["messages"][-2]["tool_calls"][0]["function"] == {"name": "bash", "arguments": '{"command":"ls"}'}
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"}


async def test_client_tools_are_counted(app: CCProxyApp) -> None:
    base = {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]}
    plain = await post(app, base, "/v1/messages/count_tokens")
    with_tools = await post(app, {**base, "tools": [BASH, EDITOR]}, "/v1/messages/count_tokens")
    assert plain.status == with_tools.status == 200
    assert with_tools.json["input_tokens"] > plain.json["input_tokens"] + 100


@pytest.mark.parametrize(
    ("tool", "fragment"),
    [
        (
            {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768},
            "computer use",
        ),
        ({"type": "code_execution_20250825", "name": "code_execution"}, "server tool 'code_execution'"),
    ],
)
async def test_tools_the_proxy_cannot_serve_are_a_400_naming_them(
    app: CCProxyApp, tool: dict[str, Any], fragment: str
) -> None:
    body = assert_anthropic_error(await post(app, {**HELLO, "tools": [BASH, tool]}), 400, "invalid_request_error")
    assert fragment in body["error"]["message"] and "tools.1" in body["error"]["message"]


async def test_output_format_reaches_the_upstream(app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=bash_call_completion("{}"))
    response = await post(app, {**HELLO, "output_format": {"type": "json_schema", "schema": SCHEMA}})
    assert response.status == 200, response.text
    assert sent_body(upstream)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": False},
    }


# ------------------------------------------------------------------------------------------ strict tools


@pytest.fixture
def strict_app(upstream: MockUpstream) -> Iterator[CCProxyApp]:
    """An app whose big model is configured to take strict functions (as OpenAI's own API does)."""
    Sanic.test_mode = True
    options = {"openai": {"models": {"gpt-5": {"supports_strict_tools": True}}}}
    application = sdk_like(create_app(make_settings(base_url=upstream.base_url, plugin_options=options)))
    yield application
    Sanic.unregister_app(application)


STRICT_TOOL = {"name": "set_title", "input_schema": SCHEMA, "strict": True}


async def test_strict_reaches_a_model_configured_for_it(strict_app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=bash_call_completion("{}"))
    assert (await post(strict_app, {**HELLO, "tools": [STRICT_TOOL]})).status == 200
    sent = sent_body(upstream)
    assert sent["tools"][0]["function"]["strict"] is True
    RequestValidator().validate(sent)


async def test_strict_is_dropped_for_other_models(strict_app: CCProxyApp, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=bash_call_completion("{}"))
    haiku = {**HELLO, "model": "claude-haiku-4-5", "tools": [STRICT_TOOL]}
    assert (await post(strict_app, haiku)).status == 200
    assert "strict" not in sent_body(upstream)["tools"][0]["function"]
