"""The real Claude Code CLI, run offline against the real proxy and the fake OpenAI upstream."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.proxy_process import REPO_ROOT, FakeUpstream, ProxyServer

pytestmark = [pytest.mark.e2e, pytest.mark.cli]

DEFAULT_CLI = REPO_ROOT / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
CLI_TIMEOUT = 120
# Only what the CLI needs from the outer environment; ANTHROPIC_* and the like must not leak in.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


@pytest.fixture(scope="module")
def claude_cli() -> Path:
    """The installed CLI (tests/support/install_claude_cli.sh); skipped when absent unless it is required."""
    path = Path(os.environ.get("CLAUDE_CLI") or DEFAULT_CLI)
    problem = _cli_problem(path)
    if problem is None:
        return path
    if os.environ.get("CCPROXY_REQUIRE_CLAUDE_CLI"):
        pytest.fail(f"Claude Code CLI required (CCPROXY_REQUIRE_CLAUDE_CLI is set) but {problem}")
    pytest.skip(f"{problem}; run tests/support/install_claude_cli.sh")


def _cli_problem(path: Path) -> str | None:
    if not path.exists():
        return f"{path} does not exist"
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path} --version failed: {exc}"
    if version.returncode != 0 or "Claude Code" not in version.stdout:
        return f"{path} --version exited {version.returncode}: {version.stdout}{version.stderr}"
    return None


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The `--output-format json` result object; fails with the CLI's output when there is none."""
        assert self.returncode == 0, f"claude exited {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"
        try:
            answer: dict[str, Any] = json.loads(self.stdout)
        except ValueError:
            pytest.fail(f"claude printed no JSON result\nstdout: {self.stdout}\nstderr: {self.stderr}")
        assert answer.get("is_error") is False, answer
        return answer


@dataclass
class ClaudeRunner:
    """Runs `claude -p <prompt> --output-format json` in a scratch project with a throwaway HOME."""

    cli: Path
    env: dict[str, str]
    project: Path

    def __call__(self, prompt: str, *args: str) -> CliRun:
        argv = [str(self.cli), "-p", prompt, "--output-format", "json", *args]
        try:
            done = subprocess.run(
                argv,
                cwd=self.project,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"claude did not finish within {CLI_TIMEOUT} s: {exc.stdout!r} {exc.stderr!r}")
        return CliRun(done.returncode, done.stdout, done.stderr)


def claude_runner(cli: Path, proxy: ProxyServer, tmp_path: Path, *, max_retries: int = 2) -> ClaudeRunner:
    """The CLI pointed at `proxy`, fully offline, in a scratch project with a throwaway HOME."""
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=proxy.base_url,
        ANTHROPIC_API_KEY="dummy",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
        CLAUDE_CODE_MAX_RETRIES=str(max_retries),
    )
    return ClaudeRunner(cli, env, project)


@pytest.fixture
def run_claude(claude_cli: Path, proxy: ProxyServer, tmp_path: Path) -> ClaudeRunner:
    """The CLI pointed at the proxy, fully offline."""
    return claude_runner(claude_cli, proxy, tmp_path)


def test_plain_prompt(run_claude: ClaudeRunner, fake: FakeUpstream, proxy: ProxyServer) -> None:
    answer = run_claude("Say hello").result()
    assert answer["result"] == f"FAKE_OPENAI_REPLY: {proxy.big_model}", fake.summary()
    chats = fake.chat_requests()
    assert chats and all(r["status"] == 200 for r in chats), fake.summary()


def test_haiku_model_goes_to_the_small_model(run_claude: ClaudeRunner, fake: FakeUpstream, proxy: ProxyServer) -> None:
    answer = run_claude("Say hello", "--model", "haiku").result()
    assert answer["result"] == f"FAKE_OPENAI_REPLY: {proxy.small_model}", fake.summary()


def test_bash_tool_round_trip(run_claude: ClaudeRunner, fake: FakeUpstream) -> None:
    answer = run_claude("USE_BASH: run a shell command", "--allowedTools", "Bash").result()
    assert answer["result"] == "TOOL_RESULT_SEEN: fake-tool-output", fake.summary()
    last = fake.last_chat()["body"]["messages"]
    tool_messages = [m for m in last if m["role"] == "tool"]
    assert tool_messages, "the tool result must reach the upstream as a role:tool message"


def test_read_tool_round_trip(run_claude: ClaudeRunner, fake: FakeUpstream) -> None:
    (run_claude.project / "note.txt").write_text("NOTE_FILE_MARKER 42\n", encoding="utf-8")
    answer = run_claude("USE_READ: read note.txt").result()
    assert answer["result"].startswith("TOOL_RESULT_SEEN: "), fake.summary()
    assert "NOTE_FILE_MARKER 42" in answer["result"]


def test_slash_context_counts_tokens(run_claude: ClaudeRunner, fake: FakeUpstream) -> None:
    answer = run_claude("/context").result()
    assert "Context Usage" in answer["result"], answer
    assert "Tokens:" in answer["result"]
