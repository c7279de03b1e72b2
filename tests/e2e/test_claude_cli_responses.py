"""Issue 8's "done when" for the Responses API: the real Claude Code CLI completes a multi-round tool loop with
thinking on through an `api = "responses"` backend, its reasoning carried across turns without server state (the
fake Responses server verifies every encrypted reasoning item that comes back)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_claude_cli import ClaudeRunner, claude_cli, claude_runner
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_configured_proxy, start_fake_openai

pytestmark = [pytest.mark.e2e, pytest.mark.cli]
__all__ = ["claude_cli"]  # the fixture, shared with test_claude_cli.py

KEY = "sk-responses-e2e-0123456789"
ROUNDS = 3


@pytest.fixture(scope="module")
def responses_fake(e2e_logs: Path) -> Iterator[FakeUpstream]:
    fake = start_fake_openai(e2e_logs, KEY, name="fake-responses", module="tests.support.fake_responses")
    yield fake
    fake.process.stop()


@pytest.fixture(scope="module")
def responses_proxy(e2e_logs: Path, responses_fake: FakeUpstream) -> Iterator[ProxyServer]:
    config = e2e_logs / "cli-responses.toml"
    config.write_text(
        f"""
[backends.openai]
provider = "openai"
base_url = "{responses_fake.base_url}"
api_key = {{"$env" = "RESPONSES_KEY"}}
api = "responses"

[routes]
"*" = ["openai:gpt-5.1"]
""",
        encoding="utf-8",
    )
    server = start_configured_proxy(e2e_logs, config, name="proxy-cli-responses", extra_env={"RESPONSES_KEY": KEY})
    yield server
    server.stop_and_check()


@pytest.fixture
def run_claude(claude_cli: Path, responses_proxy: ProxyServer, tmp_path: Path) -> ClaudeRunner:
    # No retries by Claude Code: a retried request would hide a rejected one.
    runner = claude_runner(claude_cli, responses_proxy, tmp_path, max_retries=0)
    # Thinking on for every request of the session.
    runner.env["MAX_THINKING_TOKENS"] = "16000"
    return runner


def _responses(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in fake.requests() if r["path"] == "/v1/responses"]


def test_claude_code_runs_a_tool_loop_with_reasoning_carried_across_turns(
    run_claude: ClaudeRunner, responses_fake: FakeUpstream
) -> None:
    responses_fake.reset()
    answer = run_claude(f"TOOL_ROUNDS_{ROUNDS}: run the rounds", "--allowedTools", "Bash").result()
    result = answer["result"]
    rounds = " | ".join(f"round-{k}" for k in range(1, ROUNDS + 1))
    # Every round's reasoning item came back, verified by the fake, in the last request.
    assert result == f"TOOL_RESULT_SEEN: {rounds}; REASONING_SEEN: {ROUNDS}", responses_fake.summary()
    loop = [r for r in _responses(responses_fake) if "TOOL_ROUNDS_" in str(r["body"])]
    assert len(loop) == ROUNDS + 1, responses_fake.summary()
    assert all(r["status"] == 200 for r in loop), responses_fake.summary()
    # Request k carries the k reasoning items of the turns before it, each verified.
    assert [r["reasoning_verified"] for r in loop] == list(range(ROUNDS + 1))
    for request in loop:
        body = request["body"]
        assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
        assert body["reasoning"]["summary"] == "auto"
        assert all(tool["type"] == "function" and "name" in tool for tool in body["tools"])
