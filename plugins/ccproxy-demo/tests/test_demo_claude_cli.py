"""Issue 8's newcomer: `ccproxy serve --demo` (what `./run-ccproxy.sh --demo` runs) with no key and no upstream
server, and the real Claude Code CLI completing a tool loop with thinking on through it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_claude_cli import ClaudeRunner, claude_cli, claude_runner
from tests.support.proxy_process import ProxyServer, free_port, python_env, spawn, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.cli]
__all__ = ["claude_cli"]  # the fixture, shared with tests/e2e/test_claude_cli.py


@pytest.fixture(scope="module")
def demo_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyServer]:
    """`python -m ccproxy serve --demo` in an empty directory, with no key and no upstream anywhere."""
    workdir = tmp_path_factory.mktemp("demo-proxy")
    port = free_port()
    env = python_env({"PORT": str(port), "HOST": "127.0.0.1", "LOG_FORMAT": "text", "LOG_LEVEL": "INFO"})
    process = spawn(
        "proxy-demo", [sys.executable, "-m", "ccproxy", "serve", "--demo"], workdir / "proxy.log", env, workdir
    )
    server = ProxyServer(process, port, "", "", "")
    wait_until(process, server.healthy, "answer GET / with status ok")
    yield server
    server.stop_and_check()


@pytest.fixture
def run_claude(claude_cli: Path, demo_proxy: ProxyServer, tmp_path: Path) -> ClaudeRunner:
    runner = claude_runner(claude_cli, demo_proxy, tmp_path, max_retries=0)
    runner.env["MAX_THINKING_TOKENS"] = "4096"  # thinking on: the demo answers with a thinking block first
    return runner


def test_start_up_says_the_answers_are_canned(demo_proxy: ProxyServer) -> None:
    assert demo_proxy.health() == {
        "status": "ok",
        "version": demo_proxy.health()["version"],  # type: ignore[index]  # healthy: a dict
        "core": demo_proxy.health()["core"],  # type: ignore[index]
        "provider": "demo",
        "backends": {"demo": "demo"},
    }
    assert "the demo provider gives canned answers; no model is called" in demo_proxy.process.log_text()


def test_claude_code_completes_a_tool_loop_with_no_key_and_no_server(
    run_claude: ClaudeRunner, demo_proxy: ProxyServer
) -> None:
    answer = run_claude("Show me what you can do", "--allowedTools", "Bash").result()
    # The demo asked for Bash `echo 'Hello from the ccproxy demo'`, Claude Code ran it, and the demo acknowledged it.
    assert answer["result"].startswith('The tool answered: "Hello from the ccproxy demo"'), answer
    assert answer["num_turns"] >= 2, answer
    log = demo_proxy.process.log_text()
    assert "Traceback" not in log and "backend=demo" in log
