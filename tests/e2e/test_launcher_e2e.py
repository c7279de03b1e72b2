"""`ccproxy code` and `ccproxy status` as a user runs them (issue 11 item 6): from a clean environment, the proxy is
started in the background when none answers, Claude Code (a stand-in, then the real CLI) runs against it with the
right base URL and key, its exit code passes through, and `status` tells what runs before and after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ccproxy.launcher import PLACEHOLDER_KEY
from tests.e2e.test_claude_cli import PASSED_ENV, claude_cli  # noqa: F401  # the CLI fixture
from tests.support.proxy_process import FakeUpstream, free_port, python_env

pytestmark = pytest.mark.e2e

CLIENT_KEY = "ck-launcher-0123456789abcdef"
STUB_EXIT = 7
# A stand-in for Claude Code: records its arguments and the variables the launcher sets, exits with STUB_EXIT.
STUB = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["STUB_RECORD"], "w") as out:
    json.dump({{"args": sys.argv[1:], "base_url": os.environ.get("ANTHROPIC_BASE_URL"),
               "api_key": os.environ.get("ANTHROPIC_API_KEY"), "token": os.environ.get("ANTHROPIC_AUTH_TOKEN")}}, out)
sys.exit({STUB_EXIT})
"""


@dataclass
class Launcher:
    """Runs `python -m ccproxy <args>` in a clean environment with its own HOME and port."""

    env: dict[str, str]
    cwd: Path
    port: int

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ccproxy", *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    @property
    def state_dir(self) -> Path:
        return Path(self.env["HOME"]) / ".local" / "state" / "ccproxy"

    def background_pid(self) -> int | None:
        pid_file = self.state_dir / f"ccproxy-{self.port}.pid"
        return int(pid_file.read_text()) if pid_file.exists() else None

    def stop_background(self) -> None:
        """Stop the proxy `ccproxy code` started (its pid file names it); it must exit within the wait."""
        pid = self.background_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"the background proxy {pid} did not stop on SIGTERM")


def make_launcher(tmp_path: Path, fake: FakeUpstream, path_dirs: list[Path], **extra: str) -> Launcher:
    home = tmp_path / "home"
    project = tmp_path / "project"
    home.mkdir()
    project.mkdir()
    port = free_port()
    base = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    system_path = os.environ.get("PATH", "/usr/bin:/bin")
    env = python_env(
        {
            **base,
            "PATH": os.pathsep.join([*map(str, path_dirs), system_path]),
            "HOME": str(home),
            "OPENAI_API_KEY": fake.api_key or "",
            "OPENAI_BASE_URL": fake.base_url,
            "BIG_MODEL_NAME": "gpt-5",
            "SMALL_MODEL_NAME": "gpt-4o-mini",
            "PORT": str(port),
            "LOG_FORMAT": "text",
            **extra,
        }
    )
    env.pop("XDG_STATE_HOME", None)
    return Launcher(env, project, port)


@pytest.fixture
def stub_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    stub = directory / "claude"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return directory


@pytest.fixture
def launcher(tmp_path: Path, fake: FakeUpstream, stub_dir: Path) -> Iterator[Launcher]:
    made = make_launcher(tmp_path, fake, [stub_dir], STUB_RECORD=str(tmp_path / "stub.json"))
    yield made
    made.stop_background()


def test_code_starts_the_proxy_runs_claude_and_passes_its_exit_code(launcher: Launcher, tmp_path: Path) -> None:
    before = launcher.run("status")
    assert before.returncode == 1
    assert f"nothing answers on http://127.0.0.1:{launcher.port}" in before.stderr

    done = launcher.run("code", "-p", "hello there", "--output-format", "json")
    assert done.returncode == STUB_EXIT, done.stderr
    assert "started the proxy" in done.stderr
    seen = json.loads((tmp_path / "stub.json").read_text())
    assert seen["args"] == ["-p", "hello there", "--output-format", "json"]
    assert seen["base_url"] == f"http://127.0.0.1:{launcher.port}"
    assert seen["api_key"] == PLACEHOLDER_KEY  # no client keys configured
    assert seen["token"] is None

    pid = launcher.background_pid()
    assert pid is not None
    os.kill(pid, 0)  # still running after Claude Code exited
    log = (launcher.state_dir / f"ccproxy-{launcher.port}.log").read_text()
    assert "Worker ready" in log

    after = launcher.run("status")
    assert after.returncode == 0, after.stderr
    assert f"pid {pid}" in after.stdout
    assert "*haiku*" in after.stdout and "default:gpt-4o-mini" in after.stdout
    assert "default" in after.stdout and "openai" in after.stdout
    assert "UTC, process): 0 request(s)" in after.stdout  # today's usage (Claude Code here is a stub)
    as_json = json.loads(launcher.run("status", "--json").stdout)
    assert as_json["pid"] == pid and as_json["backends"]["default"]["provider"] == "openai"
    assert as_json["usage_today"]["scope"] == "process" and as_json["usage_today"]["requests"] == 0

    again = launcher.run("code", "--version")  # the running proxy is used, not a second one started
    assert again.returncode == STUB_EXIT
    assert "started the proxy" not in again.stderr
    assert launcher.background_pid() == pid


def test_code_sends_the_first_client_key_when_keys_are_configured(
    tmp_path: Path, fake: FakeUpstream, stub_dir: Path
) -> None:
    launcher = make_launcher(
        tmp_path,
        fake,
        [stub_dir],
        STUB_RECORD=str(tmp_path / "stub.json"),
        CCPROXY_API_KEYS=f"{CLIENT_KEY},ck-other-0123456789abcd",
    )
    launcher.env["ANTHROPIC_AUTH_TOKEN"] = "from-the-users-shell"
    try:
        done = launcher.run("code", "-p", "hi")
        assert done.returncode == STUB_EXIT, done.stderr
        seen = json.loads((tmp_path / "stub.json").read_text())
        assert seen["api_key"] == CLIENT_KEY
        assert seen["token"] is None  # would be sent instead of the key
        status = launcher.run("status")  # loopback, no admin key: the admin status answers
        assert status.returncode == 0 and "routes:" in status.stdout, status.stdout + status.stderr
    finally:
        launcher.stop_background()


def test_code_without_claude_on_path_says_how_to_get_it(tmp_path: Path, fake: FakeUpstream) -> None:
    launcher = make_launcher(tmp_path, fake, [])
    launcher.env["PATH"] = str(Path(sys.executable).parent)  # python, but no claude
    done = launcher.run("code", "-p", "hi")
    assert done.returncode == 127
    assert "`claude` is not on PATH" in done.stderr and "npm install -g @anthropic-ai/claude-code" in done.stderr
    assert launcher.background_pid() is None  # nothing was started for it


def test_code_reports_a_proxy_that_fails_to_start_with_its_error_line(
    tmp_path: Path, fake: FakeUpstream, stub_dir: Path
) -> None:
    import socket

    with socket.socket() as taken:  # something that is not ccproxy holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        launcher = make_launcher(tmp_path, fake, [stub_dir], STUB_RECORD=str(tmp_path / "stub.json"))
        launcher.env["PORT"] = str(taken.getsockname()[1])
        done = launcher.run("code", "-p", "hi")
    assert done.returncode == 1
    assert "could not start the proxy" in done.stderr
    assert "exited with code 2" in done.stderr and "is already in use" in done.stderr
    assert not (tmp_path / "stub.json").exists()  # Claude Code was not run


@pytest.mark.cli
def test_code_runs_the_real_claude_code_from_a_clean_shell(
    tmp_path: Path,
    fake: FakeUpstream,
    claude_cli: Path,  # noqa: F811  # the fixture imported above
) -> None:
    launcher = make_launcher(
        tmp_path,
        fake,
        [claude_cli.parent],
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_TELEMETRY="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_ERROR_REPORTING="1",
        CLAUDE_CODE_MAX_RETRIES="2",
    )
    try:
        assert launcher.run("status").returncode == 1
        done = launcher.run("code", "-p", "hello", "--output-format", "json", timeout=180)
        assert done.returncode == 0, (done.stdout, done.stderr)
        answer = json.loads(done.stdout)
        assert answer["is_error"] is False, answer
        assert answer["result"] == "FAKE_OPENAI_REPLY: gpt-5", fake.summary()
        assert launcher.run("status").returncode == 0
        failed = launcher.run("code", "-p", "FAIL_400", "--output-format", "json", timeout=180)
        assert failed.returncode != 0  # Claude Code's own failure exit passes through
    finally:
        launcher.stop_background()
