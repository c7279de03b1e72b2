"""Issue 7's "done when": the real Claude Code CLI through a route of three backends whose first is down and whose
second answers 503 — the third answers, and Claude Code never notices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_claude_cli import ClaudeRunner, claude_cli, claude_runner
from tests.support.proxy_process import FakeUpstream, ProxyServer, free_port, start_configured_proxy, start_fake_openai

pytestmark = [pytest.mark.e2e, pytest.mark.cli]
__all__ = ["claude_cli"]  # the fixture, shared with test_claude_cli.py


@pytest.fixture(scope="module")
def busy(e2e_logs: Path) -> Iterator[FakeUpstream]:
    fake = start_fake_openai(e2e_logs, name="fake-cli-busy", extra_args=["--fail-status", "503"])
    yield fake
    fake.process.stop()


@pytest.fixture(scope="module")
def chained(e2e_logs: Path, fake_upstream: FakeUpstream, busy: FakeUpstream) -> Iterator[ProxyServer]:
    """Three backends with every resilience setting at its default; every model routed down -> busy -> good."""
    config = e2e_logs / "cli-backends.toml"
    config.write_text(
        f"""
[backends.down]
provider = "openai"
base_url = "http://127.0.0.1:{free_port()}/v1"

[backends.busy]
provider = "openai"
base_url = "{busy.base_url}"

[backends.good]
provider = "openai"
base_url = "{fake_upstream.base_url}"
api_key = {{"$env" = "GOOD_KEY"}}

[routes]
"*" = ["down:gpt-5", "busy:gpt-5", "good:gpt-5"]
""",
        encoding="utf-8",
    )
    server = start_configured_proxy(
        e2e_logs, config, name="proxy-cli-backends", extra_env={"GOOD_KEY": fake_upstream.api_key}
    )
    yield server
    server.stop_and_check()


@pytest.fixture
def run_claude(claude_cli: Path, chained: ProxyServer, tmp_path: Path) -> ClaudeRunner:
    # No retries by Claude Code: one would hide a failed fallback.
    return claude_runner(claude_cli, chained, tmp_path, max_retries=0)


def test_claude_code_runs_through_a_chain_whose_first_two_backends_fail(
    run_claude: ClaudeRunner, fake: FakeUpstream, busy: FakeUpstream, chained: ProxyServer
) -> None:
    busy.reset()
    answer = run_claude("Say hello").result()
    assert answer["result"] == "FAKE_OPENAI_REPLY: gpt-5", fake.summary()
    assert busy.chat_requests() and all(r["status"] == 503 for r in busy.chat_requests())
    assert fake.chat_requests() and all(r["status"] == 200 for r in fake.chat_requests())
    log = chained.process.log_text()
    assert "down:gpt-5 failed (Upstream unreachable" in log and "busy:gpt-5 failed (Upstream error 503" in log


def test_a_tool_turn_through_the_chain(run_claude: ClaudeRunner, fake: FakeUpstream) -> None:
    answer = run_claude("USE_BASH", "--allowedTools", "Bash").result()
    assert answer["result"].startswith("TOOL_RESULT_SEEN:"), fake.summary()
    assert "fake-tool-output" in answer["result"]
