"""Issue 8's "done when" for OpenRouter: the real Claude Code CLI completes a multi-round tool loop with thinking on
through an `openrouter` backend serving an Anthropic model. The fake refuses a replayed thinking block whose
reasoning details differ from what it sent (signatures round-trip) and misplaced cache markers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openrouter_support import MODEL, PREFERENCES, FakeOpenRouter

from tests.e2e.test_claude_cli import ClaudeRunner, claude_cli, claude_runner
from tests.support.proxy_process import ProxyServer

pytestmark = [pytest.mark.e2e, pytest.mark.cli]
__all__ = ["claude_cli"]  # the fixture, shared with tests/e2e/test_claude_cli.py

ROUNDS = 3


@pytest.fixture
def run_claude(claude_cli: Path, openrouter_proxy: ProxyServer, tmp_path: Path) -> ClaudeRunner:
    # No retries by Claude Code: one would hide a refused request.
    return claude_runner(claude_cli, openrouter_proxy, tmp_path, max_retries=0)


def test_claude_code_runs_a_tool_loop_with_thinking_through_openrouter(
    run_claude: ClaudeRunner, fake_openrouter: FakeOpenRouter
) -> None:
    answer = run_claude(f"OR_TOOL_LOOP {ROUNDS}: run the commands you are asked to", "--allowedTools", "Bash").result()
    expected = " | ".join(f"or-round-{n}" for n in range(1, ROUNDS + 1))
    assert answer["result"] == f"OR_LOOP_DONE {expected}", fake_openrouter.summary()

    requests = fake_openrouter.requests()
    assert all(r["status"] == 200 for r in requests), fake_openrouter.summary()
    loop = [r["body"] for r in requests if any(m["role"] == "tool" for m in r["body"]["messages"])]
    assert len(loop) == ROUNDS, fake_openrouter.summary()
    for round_number, body in enumerate(loop, start=1):
        assert body["model"] == MODEL and body["reasoning"] and "effort" in body["reasoning"]
        assert body["provider"] == PREFERENCES
        # Every earlier tool-use turn came back with the signed reasoning the fake sent (it refuses anything else).
        replayed = [m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
        assert len(replayed) == round_number
        assert all(m["reasoning_details"][0]["signature"] for m in replayed)
        # Claude Code's cache markers reach OpenRouter on content parts, never on tools.
        assert "cache_control" not in json.dumps(body["tools"])
        system = body["messages"][0]
        assert system["role"] == "system" and any("cache_control" in part for part in system["content"])
        marked_tools = [m for m in body["messages"] if m["role"] == "tool" and isinstance(m["content"], list)]
        assert marked_tools and marked_tools[-1]["content"][0]["cache_control"]["type"] == "ephemeral"
