"""Issue 8's "done when" for local servers: the real Claude Code CLI, thinking on, completes a multi-round tool loop
through a `local` backend (`think_tags = true`) against a fake vLLM that validates strictly, reports a 32k window
(Claude Code asks for 32,000 output tokens) and streams `<think>` tags cut across chunks — once with the opening
tag consumed by the chat template."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_local_server import MODEL, REASONING, WINDOW

from tests.e2e.test_claude_cli import CLI_TIMEOUT, ClaudeRunner, claude_cli, claude_runner
from tests.support.proxy_process import (
    FakeUpstream,
    ManagedProcess,
    ProxyServer,
    http_json,
    python_env,
    spawn,
    start_configured_proxy,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.cli]
__all__ = ["claude_cli"]  # the fixture, shared with tests/e2e/test_claude_cli.py

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-e2e")


@pytest.fixture(scope="module")
def server(logs: Path) -> Iterator[FakeUpstream]:
    argv = [sys.executable, str(HERE / "fake_local_server.py"), "--port", "0"]
    process: ManagedProcess = spawn("fake-local", argv, logs / "fake-local.log", python_env(), HERE)
    found: list[int] = []

    def port_printed() -> bool:
        match = re.search(r"^PORT=(\d+)$", process.log_text(), re.MULTILINE)
        if match:
            found.append(int(match.group(1)))
        return bool(match)

    wait_until(process, port_printed, "print its port")
    yield FakeUpstream(process, found[0], None)
    process.stop()


@pytest.fixture(scope="module")
def proxy(logs: Path, server: FakeUpstream) -> Iterator[ProxyServer]:
    config = logs / "local.toml"
    config.write_text(
        f'[backends.gpu]\nprovider = "local"\nbase_url = "{server.base_url}"\nthink_tags = true\n\n'
        f'[routes]\n"*" = "gpu:{MODEL}"\n',
        encoding="utf-8",
    )
    proxy = start_configured_proxy(logs, config, name="proxy-local")
    # The window is read in the background at start-up.
    wait_until(proxy.process, lambda: "context windows" in proxy.process.log_text(), "read the context window")
    yield proxy
    proxy.stop_and_check()


@pytest.fixture
def run_claude(claude_cli: Path, proxy: ProxyServer, tmp_path: Path) -> ClaudeRunner:
    runner = claude_runner(claude_cli, proxy, tmp_path, max_retries=0)
    runner.env["MAX_THINKING_TOKENS"] = "4096"
    return runner


def stream_json(runner: ClaudeRunner, prompt: str, *args: str) -> list[dict[str, Any]]:
    """`claude -p --output-format stream-json --verbose`: every message of the session, one JSON object a line."""
    argv = [str(runner.cli), "-p", prompt, "--output-format", "stream-json", "--verbose", *args]
    done = subprocess.run(
        argv, cwd=runner.project, env=runner.env, capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False
    )
    assert done.returncode == 0, f"claude exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_claude_code_completes_a_multi_round_tool_loop_with_thinking(
    run_claude: ClaudeRunner, server: FakeUpstream, proxy: ProxyServer
) -> None:
    lines = stream_json(run_claude, "Run the two checks", "--allowedTools", "Bash")
    [result] = [line for line in lines if line.get("type") == "result"]
    assert result["is_error"] is False, result
    assert result["result"] == "LOCAL_DONE: local-round-1 | local-round-2", result
    blocks = [block for line in lines if line.get("type") == "assistant" for block in line["message"]["content"]]
    thinking = [block["thinking"] for block in blocks if block["type"] == "thinking"]
    assert thinking == list(REASONING)  # both tag styles, cut across chunks, became the thinking blocks
    assert not any("<think>" in block.get("text", "") or "</think>" in block.get("text", "") for block in blocks)
    commands = [block["input"]["command"] for block in blocks if block["type"] == "tool_use"]
    assert commands == ["echo local-round-1", "echo local-round-2"]

    chats = http_json(f"{server.root}/_requests")["requests"]
    tool_rounds = [body for body in chats if body.get("tools")]
    assert len(tool_rounds) == 3, [len(body["messages"]) for body in chats]
    for body in chats:  # every request fit the window: Claude Code's 32,000 was clamped
        assert body["max_tokens"] < WINDOW and "reasoning_effort" not in body
    history = json.dumps(tool_rounds[-1]["messages"])
    assert REASONING[0] not in history and "<think>" not in history  # tag thinking is not replayed
    assert "Traceback" not in proxy.process.log_text()
