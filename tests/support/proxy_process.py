"""Run the real proxy and the fake OpenAI upstream as processes: start, wait until ready, stop cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
LOG_TAIL_CHARS = 6000
# Environment that would change how the proxy is configured; removed so the developer's shell cannot leak in.
PROXY_ENV_PREFIXES = ("OPENAI_", "OPENROUTER_", "ANTHROPIC_", "CCPROXY_", "SANIC_")
PROXY_ENV_NAMES = frozenset(
    {"BIG_MODEL_NAME", "SMALL_MODEL_NAME", "HOST", "PORT", "LOG_LEVEL", "WEB_CONCURRENCY", "REQUEST_TIMEOUT"}
    | {"CONNECT_TIMEOUT", "CCPROXY_CONFIG"}
)


PORT_ATTEMPTS = 3


def free_port() -> int:
    """A TCP port that was free a moment ago (the OS hands out ephemeral ports round-robin)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 10.0) -> Any:
    """A small JSON request with urllib (the control surface of the fake and the proxy's health check)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


@dataclass
class ManagedProcess:
    """A child process in its own session, with stdout and stderr captured to one log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self) -> str:
        return f"--- {self.name} log ({self.log_path}) ---\n{self.log_text()[-LOG_TAIL_CHARS:]}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `sig`; kill the process group if it has not exited within `timeout`. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._reap_group()
        return int(self.popen.returncode)

    def _reap_group(self) -> None:
        """Kill workers the process left behind in its own process group (never anything we did not start)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def spawn(name: str, argv: list[str], log_path: Path, env: Mapping[str, str], cwd: Path) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True
        )
    return ManagedProcess(name, popen, log_path)


def wait_until(process: ManagedProcess, check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `check` until it is true; fail with the process log if the process dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            code = process.popen.returncode
            raise RuntimeError(f"{process.name} exited with {code} before {what}\n" + process.log_tail())
        if check():
            return
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"{process.name} did not {what} within {timeout:.0f} s\n" + process.log_tail())


def python_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This environment minus proxy settings, with the repo importable and output unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROXY_ENV_PREFIXES) and k not in PROXY_ENV_NAMES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass
class FakeUpstream:
    """Handle on a running fake OpenAI server (tests/support/fake_openai.py)."""

    process: ManagedProcess
    port: int
    api_key: str | None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL points at."""
        return f"{self.root}/v1"

    def requests(self) -> list[dict[str, Any]]:
        """Every request received since the last reset, oldest first."""
        return list(http_json(f"{self.root}/_requests")["requests"])

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["path"] == "/v1/chat/completions"]

    def last_chat(self) -> dict[str, Any]:
        chats = self.chat_requests()
        assert chats, "the fake upstream received no chat completion request"
        return chats[-1]

    def reset(self) -> None:
        http_json(f"{self.root}/_reset", method="POST", body={})

    def set_mode(self, **mode: Any) -> None:
        """Replace the server mode (fake_openai.ServerMode: fail_status, fail_times, retry_after, delay)."""
        http_json(f"{self.root}/_mode", method="POST", body=mode)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first recorded request matching `predicate`, polling until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.requests() if predicate(r)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"fake upstream: no request {what} within {timeout} s: {self.summary()}")
            time.sleep(0.05)

    def summary(self) -> str:
        """One line per recorded request, for assertion messages."""
        lines = []
        for r in self.requests():
            state = f"status={r['status']} cancelled={r['cancelled']} error={r['error']!r}"
            lines.append(f"#{r['seq']} {r['method']} {r['path']} {state}")
        return "\n".join(lines) or "(no requests)"


def start_fake_openai(
    log_dir: Path,
    api_key: str | None = None,
    *,
    basic_auth: str | None = None,
    name: str = "fake_openai",
    extra_args: Sequence[str] = (),
    module: str = "tests.support.fake_openai",
) -> FakeUpstream:
    """Run `python -m tests.support.fake_openai --port 0` and wait for its `PORT=<n>` line.

    `basic_auth` ("user:password") makes it require HTTP basic auth instead of (or besides) the key; `extra_args`
    are more of its options (a server mode: `--fail-status 503`, `--delay 5`, ...); `module` another fake with the
    same command line and control surface (`tests.support.fake_responses`, the Responses API).
    """
    argv = [sys.executable, "-m", module, "--port", "0", *extra_args]
    if api_key:
        argv += ["--api-key", api_key]
    if basic_auth:
        argv += ["--basic-auth", basic_auth]
    process = spawn(name, argv, log_dir / f"{name}.log", python_env(), REPO_ROOT)
    found: list[int] = []

    def port_printed() -> bool:
        match = re.search(r"^PORT=(\d+)$", process.log_text(), re.MULTILINE)
        if match:
            found.append(int(match.group(1)))
        return bool(match)

    wait_until(process, port_printed, "print its port")
    return FakeUpstream(process, found[0], api_key)


@dataclass
class ProxyServer:
    """Handle on a running `python -m ccproxy serve` process."""

    process: ManagedProcess
    port: int
    api_key: str
    big_model: str
    small_model: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        return (self.health() or {}).get("status") == "ok"

    def health(self) -> dict[str, Any] | None:
        try:
            answer = http_json(self.base_url + "/", timeout=1.0)
        except (OSError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def stop_and_check(self) -> None:
        """Stop with SIGTERM; fail unless it exits 0 and logged no traceback (an unhandled error)."""
        code = self.process.stop()
        if code != 0:
            raise AssertionError(f"proxy exited with {code} after SIGTERM\n" + self.process.log_tail())
        if "Traceback (most recent call last)" in self.process.log_text():
            raise AssertionError("the proxy logged a traceback\n" + self.process.log_tail())


def start_proxy(
    log_dir: Path,
    *,
    upstream: FakeUpstream,
    api_key: str,
    big_model: str,
    small_model: str,
    workers: int = 1,
    log_level: str = "INFO",
    config_path: Path | None = None,
    extra_env: Mapping[str, str | None] | None = None,
    name: str = "proxy",
    python: str | Path | None = None,
) -> ProxyServer:
    """Start the proxy on a free port against `upstream`; return once `GET /` answers `{"status": "ok"}` (and, with
    several workers, once every worker is ready).

    `python` is the interpreter that runs it (another virtualenv's, to test plugins installed there).
    """
    settings = {
        "OPENAI_API_KEY": api_key,
        "OPENAI_BASE_URL": upstream.base_url,
        "BIG_MODEL_NAME": big_model,
        "SMALL_MODEL_NAME": small_model,
        "HOST": "127.0.0.1",
        "LOG_LEVEL": log_level,
        "WEB_CONCURRENCY": str(workers),
        # Tests read these logs as text lines; a test of JSON lines asks for them (LOG_FORMAT=json).
        "LOG_FORMAT": "text",
    }
    if config_path is not None:
        settings["CCPROXY_CONFIG"] = str(config_path)
    process, port = _launch(log_dir, {**settings, **(extra_env or {})}, name, str(python or sys.executable))
    proxy = ProxyServer(process, port, api_key, big_model, small_model)
    if workers > 1:
        # One worker answering is not all of them: on a loaded machine another may still be starting, and a test
        # that stops the server then would be testing start-up, not what it means to.
        wait_until(process, lambda: process.log_text().count("Worker ready") >= workers, f"start {workers} workers")
    return proxy


def start_configured_proxy(
    log_dir: Path,
    config_path: Path,
    *,
    extra_env: Mapping[str, str | None] | None = None,
    name: str = "proxy",
    python: str = sys.executable,
) -> ProxyServer:
    """Start the proxy configured by `config_path` alone (its [backends] and [routes]; none of the legacy variables
    OPENAI_API_KEY, ... is set), with `python` (another virtualenv's, to see what is installed there)."""
    settings = {"CCPROXY_CONFIG": str(config_path), "HOST": "127.0.0.1", "LOG_LEVEL": "DEBUG"}
    process, port = _launch(log_dir, {**settings, **(extra_env or {})}, name, python)
    return ProxyServer(process, port, "", "", "")


def _launch(log_dir: Path, settings: Mapping[str, str | None], name: str, python: str) -> tuple[ManagedProcess, int]:
    """Start `ccproxy serve` on a free port and wait until `GET /` answers ok.

    A port found free can be taken by another process before the proxy binds it (on a busy machine it happens):
    the proxy then exits at once saying so, and is started again on another port.
    """
    # A scratch working directory, so no .env or plugins.toml of the checkout is picked up.
    workdir = log_dir / f"{name}-cwd"
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        env = python_env({**settings, "PORT": str(port)})
        process = spawn(name, [python, "-m", "ccproxy", "serve"], log_dir / f"{name}.log", env, workdir)
        probe = ProxyServer(process, port, "", "", "")
        try:
            wait_until(process, probe.healthy, "answer GET / with status ok")
        except RuntimeError:
            if attempt + 1 < PORT_ATTEMPTS and not process.alive() and "already in use" in process.log_text():
                continue
            raise
        return process, port
    raise AssertionError("unreachable: the last attempt returns or raises")


def serve_until_exit(config_path: Path, cwd: Path, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    """`ccproxy serve --config FILE` on a free port, for a configuration that must stop start-up: its exit code and
    output (a start that succeeds would hang here until the timeout)."""
    return subprocess.run(
        [python, "-m", "ccproxy", "serve", "--config", str(config_path), "--port", str(free_port())],
        env=python_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
