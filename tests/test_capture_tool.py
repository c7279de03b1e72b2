"""The Claude Code capture tool (tools/capture_claude_code): what it masks, and what its fake Anthropic API answers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tools.capture_claude_code.__main__ import dashed
from tools.capture_claude_code.fake_anthropic import BASH_INPUT, REPLY_TEXT, FakeAnthropic, stream_events
from tools.capture_claude_code.scrub import MASK, Scrubber

SANDBOX = "/tmp/ccapture-k2j3h4/dev"
SCRUB = Scrubber([(SANDBOX, "/home/dev"), (dashed(SANDBOX), dashed("/home/dev"))])


def test_credentials_are_masked_and_the_auth_scheme_kept() -> None:
    headers = {"X-Api-Key": "sk-ant-api03-secret", "authorization": "Bearer tok-secret", "x-app": "cli"}
    assert SCRUB.headers(headers) == {"X-Api-Key": MASK, "authorization": f"Bearer {MASK}", "x-app": "cli"}


def test_the_device_id_inside_the_user_id_json_is_masked() -> None:
    user_id = json.dumps({"device_id": "9f" * 32, "account_uuid": "", "session_id": "4e1c"})
    body = SCRUB.body({"metadata": {"user_id": user_id}})
    assert json.loads(body["metadata"]["user_id"]) == {"device_id": "MASKED", "account_uuid": "", "session_id": "4e1c"}


def test_the_older_user_id_form_is_masked() -> None:
    body = SCRUB.body({"metadata": {"user_id": "user_" + "ab" * 32 + "_account__session_1234"}})
    assert body["metadata"]["user_id"] == f"user_{MASK}_account__session_1234"


def test_sandbox_paths_become_stable_also_in_their_dashed_form() -> None:
    text = f"cwd {SANDBOX}/project, memory in {SANDBOX}/.claude/projects/{dashed(SANDBOX + '/project')}/memory"
    assert SCRUB.body({"system": [{"text": text}]}) == {
        "system": [{"text": "cwd /home/dev/project, memory in /home/dev/.claude/projects/-home-dev-project/memory"}]
    }


def test_the_fake_streams_a_well_formed_text_and_tool_use_answer() -> None:
    for content, stop in (
        ([{"type": "text", "text": REPLY_TEXT}], "end_turn"),
        ([{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": BASH_INPUT}], "tool_use"),
    ):
        events = stream_events("claude-x", content, stop)
        check_stream(events)
        message = accumulate(events)
        assert (message["content"], message["stop_reason"]) == (content, stop)


async def _post(client: TestClient[Any, Any], body: dict[str, Any]) -> tuple[int, bytes]:
    response = await client.post("/v1/messages?beta=true", json=body)
    return response.status, await response.read()


async def test_the_fake_answers_markers_and_records_what_it_got() -> None:
    fake = FakeAnthropic()
    async with TestClient(TestServer(fake.app())) as client:
        fake.reset("/work/project")
        assert (await client.head("/")).status == 200
        base = {"model": "claude-opus-5-5", "max_tokens": 100, "stream": True}
        status, raw = await _post(client, {**base, "messages": [{"role": "user", "content": "USE_READ: note"}]})
        (block,) = accumulate(parse_sse(raw))["content"]
        assert (status, block["name"], block["input"]) == (200, "Read", {"file_path": "/work/project/note.txt"})
        result = {"type": "tool_result", "tool_use_id": block["id"], "content": "42"}
        status, raw = await _post(client, {**base, "messages": [{"role": "user", "content": [result]}]})
        assert accumulate(parse_sse(raw))["content"] == [{"type": "text", "text": "TOOL_RESULT_SEEN: 42"}]
        refused = {**base, "stream": False, "messages": [{"role": "user", "content": "FAIL_400_ONCE hi"}]}
        assert [(await _post(client, refused))[0] for _ in range(2)] == [400, 200]
        counted = await client.post("/v1/messages/count_tokens", json={"model": "m", "messages": []})
        assert (await counted.json())["input_tokens"] > 0
        received = fake.reset("/elsewhere")
    assert [(r.method, r.path, r.query) for r in received] == [("HEAD", "/", {})] + [
        ("POST", "/v1/messages", {"beta": "true"})
    ] * 4 + [("POST", "/v1/messages/count_tokens", {})]
    assert received[1].body["messages"][0]["content"] == "USE_READ: note"
