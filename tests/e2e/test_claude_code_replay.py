"""Every request the real Claude Code CLI sent (tests/fixtures/claude-code, plus ../shared when present), replayed
through the proxy."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from tests.support.anthropic_stream import streamed_message, wire_text
from tests.support.fake_openai import BASH_ARGUMENTS
from tests.support.fixtures import ClaudeCodeRequest, claude_code_requests, repo_claude_code_requests
from tests.support.proxy_process import FakeUpstream, ProxyServer

pytestmark = pytest.mark.e2e

# Hop-by-hop or per-connection headers of the capture; everything else is sent as the CLI sent it.
DROPPED_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding"})
CAPTURES = {capture.id: capture for capture in claude_code_requests()}


def replay(proxy: ProxyServer, capture: ClaudeCodeRequest) -> tuple[int, bytes]:
    request = capture.request
    headers = {k: v for k, v in capture.headers().items() if k not in DROPPED_HEADERS}
    headers["x-api-key"] = "sk-ant-dummy"
    query = "&".join(f"{k}={v}" for k, v in request["query"].items())
    path = request["path"] + (f"?{query}" if query else "")
    body = None if request["method"] == "HEAD" else json.dumps(request["body"], ensure_ascii=False).encode()
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        connection.request(request["method"], path, body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, str):
                return content
            return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def tool_result_content(body: dict[str, Any]) -> str | None:
    """The text of the tool_result in the final user turn, when that turn answers a tool call."""
    content = body["messages"][-1]["content"]
    for block in content if isinstance(content, list) else []:
        if block.get("type") == "tool_result":
            result = block["content"]
            return result if isinstance(result, str) else "".join(p.get("text", "") for p in result)
    return None


def test_the_captures_are_there() -> None:
    own = repo_claude_code_requests()
    assert len(own) >= 40
    assert {capture.path for capture in own} == {"/v1/messages", "/v1/messages/count_tokens"}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_replayed_request(proxy: ProxyServer, fake: FakeUpstream, name: str) -> None:
    capture = CAPTURES[name]
    status, raw = replay(proxy, capture)
    if capture.method == "HEAD":
        assert status == 200, raw
        return
    if capture.path.endswith("/count_tokens"):
        assert status == 200, raw
        answer = json.loads(raw)
        assert isinstance(answer["input_tokens"], int) and answer["input_tokens"] > 0
        assert fake.chat_requests() == []
        return
    check_message_stream(proxy, fake, capture.body, status, raw)


def check_message_stream(proxy: ProxyServer, fake: FakeUpstream, body: dict[str, Any], status: int, raw: bytes) -> None:
    prompt = last_user_text(body)
    if "FAIL_400" in prompt:
        assert status == 400, raw
        assert json.loads(raw)["error"]["type"] == "invalid_request_error"
        return
    assert status == 200, f"{raw[:2000]!r}\nupstream: {fake.summary()}"
    message = streamed_message(raw)
    upstream_model = proxy.small_model if "haiku" in body["model"] else proxy.big_model
    assert fake.last_chat()["body"]["model"] == upstream_model
    result = tool_result_content(body)
    if result is not None:
        assert wire_text(message) == f"TOOL_RESULT_SEEN: {result}"
        assert message["stop_reason"] == "end_turn"
    elif "USE_BASH" in prompt:
        assert [(b["type"], b["name"], b["input"]) for b in message["content"]] == [
            ("tool_use", "Bash", BASH_ARGUMENTS)
        ]
        assert message["stop_reason"] == "tool_use"
    elif "USE_READ" in prompt:
        (block,) = message["content"]
        assert (block["name"], block["input"]) == ("Read", {"file_path": "/home/dev/project/note.txt"})
    else:
        assert wire_text(message) == f"FAKE_OPENAI_REPLY: {upstream_model}"
        assert message["stop_reason"] == "end_turn"
