"""Run the Claude Code CLI once, offline, in a throwaway HOME: `claude -p ...` or the full-screen UI in a pty."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import re
import struct
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The environment of every run: no telemetry, updates, error reports or other traffic beyond the API itself.
OFFLINE_ENV = {
    "ANTHROPIC_API_KEY": "dummy",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_MAX_RETRIES": "2",
}
# Taken from the outer environment: enough to find a shell for the Bash tool, nothing that configures the CLI.
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[\]P^_].*?(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
PTY_ROWS, PTY_COLUMNS = 40, 120


@dataclass(frozen=True)
class Scenario:
    """One way of running the CLI (an entry of scenarios.toml)."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    expect: str = ""
    expect_rc: int = 0
    interactive: bool = False

    @classmethod
    def from_toml(cls, entry: dict[str, Any]) -> Scenario:
        return cls(**entry)

    def argv(self) -> list[str]:
        """The command line as recorded in the fixtures."""
        if self.interactive:
            return ["claude", "(interactive UI; typed:)", *self.args]
        return ["claude", *self.args]


@dataclass
class RunResult:
    returncode: int
    result: str
    stderr_tail: str


@dataclass(frozen=True)
class Sandbox:
    """A throwaway HOME with the project directory inside it, so one path rewrite covers both."""

    home: Path

    @property
    def project(self) -> Path:
        return self.home / "project"

    @classmethod
    def create(cls, root: Path) -> Sandbox:
        sandbox = cls(root / "dev")
        sandbox.project.mkdir(parents=True)
        (sandbox.project / "note.txt").write_text("NOTE_FILE_MARKER 42\n", encoding="utf-8")
        return sandbox

    def trust_project(self, api_key: str | None) -> None:
        """Skip the first-run dialogs of the full-screen UI (theme, onboarding, folder trust, "use this API key?")."""
        state = {
            "hasCompletedOnboarding": True,
            "theme": "dark",
            # The CLI remembers an approved key by its last 20 characters.
            "customApiKeyResponses": {"approved": [api_key[-20:]] if api_key else [], "rejected": []},
            "projects": {str(self.project): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
        }
        (self.home / ".claude.json").write_text(json.dumps(state), encoding="utf-8")


def environment(scenario: Scenario, sandbox: Sandbox, base_url: str) -> dict[str, str]:
    """The CLI's whole environment for one scenario."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(OFFLINE_ENV, HOME=str(sandbox.home), ANTHROPIC_BASE_URL=base_url)
    env.update(scenario.env)
    for name in scenario.unset:
        env.pop(name, None)
    return env


async def run_print_mode(
    cli: Path, scenario: Scenario, sandbox: Sandbox, env: dict[str, str], timeout: float
) -> RunResult:
    """`claude -p ...`: the result is the `result` field of the JSON output (or the output's tail)."""
    process = await asyncio.create_subprocess_exec(
        str(cli),
        *scenario.args,
        cwd=sandbox.project,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        return RunResult(-9, f"timed out after {timeout} s: " + _tail(stdout.decode(errors="replace")), "")
    text = stdout.decode(errors="replace")
    return RunResult(process.returncode or 0, _result_of(text), _tail(stderr.decode(errors="replace")))


def _result_of(stdout: str) -> str:
    # `--output-format json` prints one object; `stream-json` prints one per line, the last being the result.
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict) and "result" in value:
                return str(value["result"])
    return _tail(stdout)


def _tail(text: str, size: int = 600) -> str:
    return text[-size:]


async def run_interactive(
    cli: Path, scenario: Scenario, sandbox: Sandbox, env: dict[str, str], timeout: float
) -> RunResult:
    """The full-screen UI in a pseudo-terminal: type each line of `args`, wait for `expect` on screen, quit."""
    sandbox.trust_project(env.get("ANTHROPIC_API_KEY"))
    env = {**env, "TERM": "xterm-256color", "COLUMNS": str(PTY_COLUMNS), "LINES": str(PTY_ROWS)}
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLUMNS, 0, 0))
    process = await asyncio.create_subprocess_exec(
        str(cli), cwd=sandbox.project, env=env, stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True
    )
    os.close(terminal)
    screen = _Screen(controller)
    try:
        await screen.wait_for(lambda text: len(text) > 200, timeout)  # the UI has drawn its prompt box
        await asyncio.sleep(2.0)
        for line in scenario.args:
            await screen.type_line(line)
        seen = await screen.wait_for(lambda text: scenario.expect in text, timeout)
        await asyncio.sleep(3.0)  # follow-up requests (e.g. the session title) after the answer
        await screen.type_keys(b"\x03\x03")  # Ctrl-C twice quits
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        seen = False
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(controller)
    # The screen is only worth keeping when the answer never appeared (it changes with the clock otherwise).
    result = scenario.expect if seen else "screen tail: " + _tail(screen.plain(), 300)
    return RunResult(process.returncode or 0, result, "")


class _Screen:
    """Reads the pty's output as it comes; what was drawn, without the terminal escapes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._raw = bytearray()
        os.set_blocking(fd, False)

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self._fd, 65536):
                self._raw += chunk

    def plain(self) -> str:
        self._drain()
        return ANSI_ESCAPE.sub("", self._raw.decode(errors="replace"))

    async def wait_for(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self.plain()):
                return True
            await asyncio.sleep(0.2)
        raise TimeoutError

    async def type_keys(self, keys: bytes, pause: float = 0.3) -> None:
        os.write(self._fd, keys)
        await asyncio.sleep(pause)

    async def type_line(self, line: str) -> None:
        for char in line:
            await self.type_keys(char.encode(), pause=0.05)
        await asyncio.sleep(0.5)
        await self.type_keys(b"\r")
