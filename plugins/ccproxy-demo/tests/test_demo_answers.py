"""The demo provider in a real app (`--demo` settings): text, a tool call, thinking, a tool-result acknowledgement,
streamed and not, with usage, deterministic, and no socket opened."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.cli import demo_settings
from ccproxy.settings import load_settings
from ccproxy_demo import BASH_ARGUMENTS, DemoUpstream
from tests.api.conftest import sdk_like
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse

BASH = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {}}}
WEATHER = {
    "name": "get_weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string"}},
        "required": ["city", "days"],
    },
}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CCProxyApp]:
    def no_session(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the demo provider must not open a connection")

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", no_session)
    Sanic.test_mode = True
    empty = tmp_path / "plugins.toml"
    empty.write_text("", encoding="utf-8")
    application = sdk_like(create_app(load_settings({}, config_path=empty, **demo_settings())))
    yield application
    Sanic.unregister_app(application)


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": list(messages), **extra}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def ask(app: CCProxyApp, request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The non-stream answer and the message the stream of the same request builds (grammar checked)."""
    _, plain = await app.asgi_client.post("/v1/messages", json=request)
    assert plain.status == 200, plain.text
    _, streamed = await app.asgi_client.post("/v1/messages", json={**request, "stream": True})
    assert streamed.status == 200, streamed.text
    events = parse_sse(streamed.body)
    check_stream(events)
    return plain.json, accumulate(events)


async def test_text_with_usage_streamed_or_not(app: CCProxyApp) -> None:
    plain, streamed = await ask(app, body(user("Hello, demo")))
    assert [block["type"] for block in plain["content"]] == ["text"]
    assert 'You said: "Hello, demo"' in plain["content"][0]["text"] and "canned" in plain["content"][0]["text"]
    assert plain["stop_reason"] == "end_turn"
    assert plain["usage"]["input_tokens"] > 0 and plain["usage"]["output_tokens"] > 0
    assert streamed["content"] == plain["content"] and streamed["usage"]["output_tokens"] > 0
    assert app.ctx.backends["demo"].transport.__class__ is DemoUpstream


async def test_the_same_request_gets_the_same_answer(app: CCProxyApp) -> None:
    first, _ = await ask(app, body(user("again"), tools=[BASH]))
    second, _ = await ask(app, body(user("again"), tools=[BASH]))
    assert first["content"] == second["content"]


async def test_claude_codes_bash_tool_gets_a_harmless_echo(app: CCProxyApp) -> None:
    plain, streamed = await ask(app, body(user("list files"), tools=[WEATHER, BASH]))
    tool = plain["content"][-1]
    assert (tool["type"], tool["name"], tool["input"]) == ("tool_use", "Bash", BASH_ARGUMENTS)
    assert tool["input"]["command"].startswith("echo ")
    assert plain["stop_reason"] == "tool_use"
    assert streamed["content"] == plain["content"] and streamed["stop_reason"] == "tool_use"


async def test_another_tool_is_called_with_placeholder_arguments(app: CCProxyApp) -> None:
    plain, _ = await ask(app, body(user("weather?"), tools=[WEATHER]))
    assert plain["content"][-1]["input"] == {"city": "demo", "days": 1}
    none, _ = await ask(app, body(user("weather?"), tools=[WEATHER], tool_choice={"type": "none"}))
    assert [block["type"] for block in none["content"]] == ["text"]


async def test_thinking_on_gives_a_thinking_block_first(app: CCProxyApp) -> None:
    request = body(user("think first"), thinking={"type": "enabled", "budget_tokens": 2048}, tools=[BASH])
    plain, streamed = await ask(app, request)
    assert [block["type"] for block in plain["content"]] == ["thinking", "text", "tool_use"]
    assert "think first" in plain["content"][0]["thinking"]
    assert streamed["content"] == plain["content"]


async def test_a_tool_result_is_acknowledged_and_ends_the_loop(app: CCProxyApp) -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": BASH_ARGUMENTS}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Hello from the ccproxy demo"}
    reminder = {"type": "text", "text": "<system-reminder>a note Claude Code adds</system-reminder>"}
    history = [
        user("run it"),
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [result, reminder]},
    ]
    plain, streamed = await ask(app, body(*history, tools=[BASH]))
    assert [block["type"] for block in plain["content"]] == ["text"]
    assert 'The tool answered: "Hello from the ccproxy demo"' in plain["content"][0]["text"]
    assert plain["stop_reason"] == "end_turn" and streamed["content"] == plain["content"]


async def test_models_are_listed_without_a_server(app: CCProxyApp) -> None:
    _, response = await app.asgi_client.get("/v1/models")
    assert response.status == 200
    assert "demo:demo" in json.dumps(response.json)
