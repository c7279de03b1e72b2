"""The fake OpenAI upstream itself: chunk format, scripted markers, strict validation, control surface."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

import pytest

from tests.support.fake_openai import CACHED_TOKENS, PROMPT_TOKENS, RETRY_AFTER_SECONDS
from tests.support.proxy_process import FakeUpstream

pytestmark = pytest.mark.e2e


def post(fake: FakeUpstream, body: dict[str, Any], key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        headers = {"content-type": "application/json", "authorization": f"Bearer {key or fake.api_key}"}
        connection.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def chat(prompt: str, *, model: str = "gpt-4o-mini", stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


def sse_data(raw: bytes) -> list[Any]:
    """The `data:` payloads of an SSE body, JSON-decoded except the `[DONE]` sentinel."""
    events = []
    for block in raw.decode().split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            payload = block.removeprefix("data: ")
            events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def deltas(events: list[Any]) -> list[dict[str, Any]]:
    return [e["choices"][0]["delta"] for e in events if isinstance(e, dict) and e.get("choices")]


def test_stream_has_openai_chunk_grammar(fake: FakeUpstream) -> None:
    status, headers, raw = post(fake, chat("hello", stream=True))
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = sse_data(raw)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o-mini" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    pieces = [d["content"] for d in deltas(chunks)[1:] if d.get("content")]
    assert len(pieces) >= 2
    assert "".join(pieces) == "FAKE_OPENAI_REPLY: gpt-4o-mini"
    final, usage = chunks[-2], chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["choices"][0]["delta"] == {}
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_chunk(fake: FakeUpstream) -> None:
    body = chat("hello", model="gpt-5", stream=True)
    del body["stream_options"]
    status, _, raw = post(fake, body)
    chunks = sse_data(raw)[:-1]
    assert status == 200
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_parallel_tool_calls_stream_by_index(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, chat("USE_TWO_TOOLS please", stream=True))
    assert status == 200
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas(sse_data(raw)):
        for fragment in delta.get("tool_calls", []):
            call = calls.setdefault(fragment["index"], {"arguments": ""})
            if "id" in fragment:
                assert "id" not in call, "id must come only in the first fragment"
                call.update(id=fragment["id"], name=fragment["function"]["name"])
            else:
                assert "id" in call, "argument fragments must follow the fragment carrying id and name"
            call["arguments"] += fragment["function"]["arguments"]
    assert sorted(calls) == [0, 1]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Tokyo"}]
    assert all(c["name"] == "get_weather" and c["id"].startswith("call_") for c in calls.values())
    assert sse_data(raw)[-3]["choices"][0]["finish_reason"] == "tool_calls"


def test_non_stream_bash_tool_call(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, chat("USE_BASH now", model="gpt-5"))
    body = json.loads(raw)
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "Bash"
    assert json.loads(call["function"]["arguments"]) == {
        "command": "echo fake-tool-output",
        "description": "Echo a marker",
    }


def test_read_tool_uses_path_from_prompt_or_working_directory(fake: FakeUpstream) -> None:
    _, _, raw = post(fake, chat("USE_READ /tmp/x/notes.md"))
    call = json.loads(raw)["choices"][0]["message"]["tool_calls"][0]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "Read",
        {"file_path": "/tmp/x/notes.md"},
    )
    body = chat("USE_READ: read note.txt")
    body["messages"].insert(0, {"role": "system", "content": "Primary working directory: /home/dev/project\n"})
    _, _, raw = post(fake, body)
    arguments = json.loads(raw)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"file_path": "/home/dev/project/note.txt"}


def test_tool_results_are_echoed(fake: FakeUpstream) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}
    body = chat("USE_BASH now")
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "fake-tool-output"}]},
    ]
    _, _, raw = post(fake, body)
    assert json.loads(raw)["choices"][0]["message"]["content"] == "TOOL_RESULT_SEEN: fake-tool-output"


def test_think_streams_reasoning_before_text(fake: FakeUpstream) -> None:
    _, _, raw = post(fake, chat("THINK about it", model="o4-mini", stream=True))
    kinds = [
        ("reasoning" if d.get("reasoning_content") else "text")
        for d in deltas(sse_data(raw))
        if d.get("reasoning_content") or d.get("content")
    ]
    assert kinds[0] == "reasoning" and kinds[-1] == "text"
    assert kinds == sorted(kinds)  # all reasoning, then all text


def test_cached_marker_reports_cached_tokens(fake: FakeUpstream) -> None:
    _, _, raw = post(fake, chat("CACHED hello"))
    usage = json.loads(raw)["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == CACHED_TOKENS
    assert usage["prompt_tokens"] == PROMPT_TOKENS


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 429, 500, 502, 503, 504])
@pytest.mark.parametrize("stream", [False, True])
def test_fail_markers(fake: FakeUpstream, status: int, stream: bool) -> None:
    got, headers, raw = post(fake, chat(f"FAIL_{status} please", stream=stream))
    assert got == status
    error = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (headers.get("retry-after") == RETRY_AFTER_SECONDS) is (status == 429)


def test_fail_once_marker_fails_only_the_first_time(fake: FakeUpstream) -> None:
    assert post(fake, chat("FAIL_503_ONCE hi"))[0] == 503
    assert post(fake, chat("FAIL_503_ONCE hi"))[0] == 200


def test_midstream_error_after_text(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, chat("MIDSTREAM_ERROR", stream=True))
    events = sse_data(raw)
    assert status == 200
    assert any(d.get("content") for d in deltas(events))
    assert events[-1] == {"error": {"code": 502, "message": "provider died"}}


def test_slow_marker_delays_the_answer(fake: FakeUpstream) -> None:
    started = time.monotonic()
    assert post(fake, chat("SLOW_0.4 hi"))[0] == 200
    assert time.monotonic() - started >= 0.4


def test_hang_stream_records_the_client_going_away(fake: FakeUpstream) -> None:
    sock = socket.create_connection(("127.0.0.1", fake.port), timeout=5)
    body = json.dumps(chat("HANG_STREAM", stream=True)).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {fake.api_key}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    received = b""
    while received.count(b"data: ") < 4:  # the role chunk and the three text pieces
        received += sock.recv(65536)
    time.sleep(0.2)
    assert fake.last_chat()["cancelled"] is False
    sock.close()
    record = fake.wait_for(lambda r: r["cancelled"], "cancelled after the client closed", timeout=5)
    assert record["completed"] is False


CALL_A = {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
ASKED_TOOL: list[dict[str, Any]] = [
    {"role": "user", "content": "x"},
    {"role": "assistant", "content": None, "tool_calls": [CALL_A]},
]
IMAGE_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
CACHED_PART = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
LONG_TOOL = {"type": "function", "function": {"name": "x" * 65, "parameters": {"type": "object"}}}


def conversation(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": list(messages)}


BAD_REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level field": (chat("hi", thinking={"type": "enabled"}), "Unrecognized request argument"),
    "anthropic field on a part": (
        conversation({"role": "user", "content": [CACHED_PART]}),
        "messages[0].content[0].cache_control",
    ),
    "missing model": ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    "missing messages": ({"model": "gpt-4o"}, "messages"),
    "max_tokens on gpt-5": (chat("hi", model="gpt-5", max_tokens=10), "max_completion_tokens"),
    "max_tokens on o3": (chat("hi", model="o3", max_tokens=10), "max_completion_tokens"),
    "temperature on gpt-5": (chat("hi", model="gpt-5", temperature=0.2), "temperature"),
    "tool_choice without tools": (chat("hi", tool_choice="auto"), "tool_choice"),
    "stream_options without stream": (chat("hi", stream_options={"include_usage": True}), "stream_options"),
    "tool calls not answered": (
        conversation(*ASKED_TOOL, {"role": "user", "content": "y"}),
        "must be followed by tool messages",
    ),
    "tool message without a call": (
        conversation({"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_z", "content": "r"}),
        "must be a response to a preceeding message",
    ),
    "image in a tool message": (
        conversation(*ASKED_TOOL, {"role": "tool", "tool_call_id": "call_a", "content": [IMAGE_PART]}),
        "content[0].type",
    ),
    "long tool name": (chat("hi", tools=[LONG_TOOL]), "function.name"),
    "empty tools": (chat("hi", tools=[]), "empty array"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_rejects_what_openai_rejects(fake: FakeUpstream, case: str) -> None:
    body, expected = BAD_REQUESTS[case]
    status, _, raw = post(fake, body)
    error = json.loads(raw)["error"]
    assert status == 400, raw
    assert expected in f"{error['message']} {error['param']}"
    assert fake.last_chat()["status"] == 400


def test_claude_model_name_is_not_found(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, chat("hi", model="claude-sonnet-4-5"))
    assert status == 404
    assert json.loads(raw)["error"]["code"] == "model_not_found"


def test_wrong_key_is_unauthorized(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, chat("hi"), key="sk-wrong")
    assert status == 401
    assert json.loads(raw)["error"]["code"] == "invalid_api_key"


def test_control_surface_records_headers_and_bodies(fake: FakeUpstream) -> None:
    post(fake, chat("hello"))
    (record,) = fake.requests()
    assert record["headers"]["authorization"] == f"Bearer {fake.api_key}"
    assert record["body"]["messages"][0]["content"] == "hello"
    assert (record["status"], record["completed"], record["cancelled"]) == (200, True, False)
    fake.reset()
    assert fake.requests() == []


def test_models_listing(fake: FakeUpstream) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    connection.request("GET", "/v1/models", headers={"authorization": f"Bearer {fake.api_key}"})
    listing = json.loads(connection.getresponse().read())
    connection.close()
    assert listing["object"] == "list"
    assert "gpt-5" in [m["id"] for m in listing["data"]]


def test_echo_key_marker_repeats_the_presented_key(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, chat("ECHO_KEY"))
    assert status == 401
    assert f"Incorrect API key provided: {fake.api_key}." == json.loads(raw)["error"]["message"]
