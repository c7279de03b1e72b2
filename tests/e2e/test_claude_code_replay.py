"""Every request the real Claude Code CLI sent (shared/fixtures/claude-code), replayed through the proxy."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.anthropic_stream import streamed_message, wire_text
from tests.support.fake_openai import BASH_ARGUMENTS
from tests.support.proxy_process import FakeUpstream, ProxyServer

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "claude-code"
# Hop-by-hop or per-connection headers of the capture; everything else is sent as the CLI sent it.
DROPPED_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding"})
CAPTURES = sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "INDEX.json")


def load(name: str) -> dict[str, Any]:
    request: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))["request"]
    return request


def replay(proxy: ProxyServer, request: dict[str, Any]) -> tuple[int, bytes]:
    headers = {k: v for k, v in request["headers"].items() if k.lower() not in DROPPED_HEADERS}
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
    assert len(CAPTURES) >= 40, f"expected the Claude Code captures in {FIXTURES}"


@pytest.mark.parametrize("name", CAPTURES)
def test_replayed_request(proxy: ProxyServer, fake: FakeUpstream, name: str) -> None:
    request = load(name)
    status, raw = replay(proxy, request)
    if request["method"] == "HEAD":
        assert status == 200, raw
        return
    if request["path"].endswith("/count_tokens"):
        assert status == 200, raw
        answer = json.loads(raw)
        assert isinstance(answer["input_tokens"], int) and answer["input_tokens"] > 0
        assert fake.chat_requests() == []
        return
    check_message_stream(proxy, fake, request["body"], status, raw)


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
