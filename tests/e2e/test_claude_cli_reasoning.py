"""Issue 8's "done when" for reasoning models: the real Claude Code CLI completes a multi-round tool loop with thinking
on through a DeepSeek-V4-style backend, against the fake upstream enforcing DeepSeek's thinking-mode rule; and the
fake's vendor rules themselves, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_claude_cli import ClaudeRunner, claude_cli, claude_runner
from tests.e2e.test_fake_openai import deltas, post, sse_data
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_configured_proxy
from tests.support.reasoning_vendors import DEEPSEEK_REASONING, DEEPSEEK_REPLAY_MESSAGE

pytestmark = [pytest.mark.e2e, pytest.mark.cli]
__all__ = ["claude_cli"]  # the fixture, shared with test_claude_cli.py

MODEL = "deepseek-v4-pro"
ROUNDS = 3
CALL = {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}
BASH_TOOL = {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture(scope="module")
def deepseek_proxy(e2e_logs: Path, fake_upstream: FakeUpstream) -> Iterator[ProxyServer]:
    """The proxy with one backend serving every model as DeepSeek V4, at the fake (no capability override: the
    OpenAI plugin's family table alone must know how DeepSeek V4 reasons)."""
    config = e2e_logs / "cli-deepseek.toml"
    config.write_text(
        f"""
[backends.deepseek]
provider = "openai"
base_url = "{fake_upstream.base_url}"
api_key = {{"$env" = "DEEPSEEK_KEY"}}

[routes]
"*" = "deepseek:{MODEL}"
""",
        encoding="utf-8",
    )
    server = start_configured_proxy(
        e2e_logs, config, name="proxy-cli-deepseek", extra_env={"DEEPSEEK_KEY": fake_upstream.api_key}
    )
    yield server
    server.stop_and_check()


@pytest.fixture
def run_claude(claude_cli: Path, deepseek_proxy: ProxyServer, tmp_path: Path) -> ClaudeRunner:
    # No retries by Claude Code: one would hide a refused round.
    return claude_runner(claude_cli, deepseek_proxy, tmp_path, max_retries=0)


def test_claude_code_completes_a_deepseek_v4_tool_loop_with_thinking_on(
    run_claude: ClaudeRunner, fake: FakeUpstream
) -> None:
    answer = run_claude(f"TOOL_ROUNDS_{ROUNDS}: run the commands", "--allowedTools", "Bash").result()
    assert answer["result"] == f"TOOL_RESULT_SEEN: round-{ROUNDS}", fake.summary()
    chats = fake.chat_requests()
    assert chats and all(r["status"] == 200 for r in chats), fake.summary()
    loop = [r["body"] for r in chats if r["body"].get("thinking") == {"type": "enabled"}]
    assert len(loop) == ROUNDS + 1, fake.summary()
    calls = [m for m in loop[-1]["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert len(calls) == ROUNDS
    assert all(m["reasoning_content"] == DEEPSEEK_REASONING for m in calls)
    outputs = [m["content"] for m in loop[-1]["messages"] if m["role"] == "tool"]
    assert outputs == [f"round-{n}" for n in range(1, ROUNDS + 1)]


def deepseek_history(**assistant: Any) -> dict[str, Any]:
    messages = [
        {"role": "user", "content": "List the files"},
        {"role": "assistant", "content": None, "tool_calls": [CALL], **assistant},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
    ]
    return {"model": MODEL, "messages": messages, "tools": [BASH_TOOL], "thinking": {"type": "enabled"}}


def test_the_fake_refuses_a_deepseek_tool_call_without_its_reasoning(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, deepseek_history())
    assert status == 400
    assert DEEPSEEK_REPLAY_MESSAGE in raw.decode()
    status, _, _ = post(fake, {**deepseek_history(), "thinking": {"type": "disabled"}})
    assert status == 200  # the rule is thinking mode's


def test_the_fake_streams_deepseek_reasoning_before_the_tool_call(fake: FakeUpstream) -> None:
    body = {
        **deepseek_history(reasoning_content="I listed them."),
        "stream": True,
        "messages": [{"role": "user", "content": "TOOL_ROUNDS_1 go"}],
    }
    status, _, raw = post(fake, body)
    assert status == 200
    kinds = [next(iter(set(d) & {"reasoning_content", "tool_calls"}), None) for d in deltas(sse_data(raw))]
    seen = [kind for n, kind in enumerate(kinds) if kind and kind != kinds[n - 1]]
    assert seen == ["reasoning_content", "tool_calls"]


def test_the_fake_answers_mistral_422_for_any_reasoning_field(fake: FakeUpstream) -> None:
    body = {**deepseek_history(reasoning_content="x"), "model": "mistral-large-latest"}
    del body["thinking"]
    status, _, raw = post(fake, body)
    assert status == 422 and b"extra_forbidden" in raw and b"reasoning_content" in raw
