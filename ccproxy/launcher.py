"""`ccproxy code [claude args]` (start the proxy in the background if none answers, then run Claude Code against it)
and `ccproxy status` (what answers on the configured address: process, routes, backends' health)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccproxy.keys import auth_config
from ccproxy.settings import Settings, SettingsError

EXIT_NOT_RUNNING = 1
EXIT_START_FAILED = 1
EXIT_NO_CLAUDE = 127  # what a shell says for a command it cannot find
START_TIMEOUT = 30.0  # seconds for a background proxy to answer GET /
PROBE_TIMEOUT = 1.0
POLL_SECONDS = 0.1
# Sent as ANTHROPIC_API_KEY when the proxy needs no client key (Claude Code asks for a login without one).
PLACEHOLDER_KEY = "ccproxy-no-key-needed"
CLAUDE_INSTALL_HINT = "install Claude Code (npm install -g @anthropic-ai/claude-code) or put its directory on PATH"
# Words that mark the line of a failed start worth quoting (the CLI prints one line; a crash a traceback's last).
ERROR_MARKERS = ("error", "Error", "refused", "cannot", "Traceback")


@dataclass(frozen=True, slots=True)
class Address:
    """Where a client reaches the proxy the settings describe (a wildcard bind is reached on loopback)."""

    host: str
    port: int

    @classmethod
    def of(cls, settings: Settings) -> Address:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
        return cls(host, settings.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def state_dir(environ: Mapping[str, str]) -> Path:
    """Where a background proxy's log and pid files go: $XDG_STATE_HOME/ccproxy, else ~/.local/state/ccproxy."""
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "ccproxy"


def get_json(url: str, headers: Mapping[str, str] | None = None, timeout: float = PROBE_TIMEOUT) -> Any:
    """The JSON answer of a GET, or None when nothing (or something that is not ccproxy's JSON) answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def health(address: Address) -> dict[str, Any] | None:
    """`GET /` of a ccproxy on `address`, or None when none answers there."""
    answer = get_json(address.url + "/")
    if isinstance(answer, dict) and answer.get("status") == "ok" and "version" in answer:
        return answer
    return None


def client_key(settings: Settings) -> str | None:
    """The first configured client key (CCPROXY_API_KEYS, then [[auth.keys]]), or None when none is needed."""
    if settings.api_keys:
        return settings.api_keys[0]
    keys = auth_config(settings).keys
    return keys[0].key if keys else None


def admin_key(settings: Settings) -> str | None:
    return settings.admin_key or auth_config(settings).admin_key


def first_error_line(text: str) -> str:
    """The line of a start-up log that says what went wrong: the first with an error word, else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "(no output)"
    if "Traceback (most recent call last):" in text:
        return lines[-1]  # the exception itself
    return next((line for line in lines if any(marker in line for marker in ERROR_MARKERS)), lines[-1])


@dataclass(frozen=True, slots=True)
class Started:
    """A proxy started in the background: its process, and where its output starts in the (appended) log file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int

    @property
    def pid(self) -> int:
        return self.process.pid


def start_background(address: Address, environ: Mapping[str, str], argv: Sequence[str] | None = None) -> Started:
    """`python -m ccproxy serve` detached (own session, no terminal), output to a log file, its pid in a pid file."""
    directory = state_dir(environ)
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"ccproxy-{address.port}.log"
    pid_path = directory / f"ccproxy-{address.port}.pid"
    command = list(argv or [sys.executable, "-m", "ccproxy", "serve"])
    with log_path.open("ab") as log, open(os.devnull, "rb") as devnull:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ccproxy code: starting {' '.join(command)}\n".encode())
        log.flush()
        offset = log.tell()
        process = subprocess.Popen(
            command, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, env=dict(environ), start_new_session=True
        )
    pid_path.write_text(f"{process.pid}\n", encoding="ascii")
    return Started(process, log_path, offset)


def wait_ready(address: Address, started: Started, timeout: float = START_TIMEOUT) -> str | None:
    """None once GET / answers; else why not (the process exited, or the timeout passed), with its first error."""
    process = started.process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health(address) is not None:
            return None
        code = process.poll()
        if code is not None:
            return f"the proxy exited with code {code}: {first_error_line(_log_since(started))}"
        time.sleep(POLL_SECONDS)
    return f"the proxy did not answer {address.url}/ within {timeout:.0f} s (still starting? see the log)"


def _log_since(started: Started) -> str:
    with started.log_path.open("rb") as log:
        log.seek(started.log_offset)
        return log.read().decode("utf-8", errors="replace")


def claude_env(environ: Mapping[str, str], address: Address, key: str | None) -> dict[str, str]:
    """The environment Claude Code runs with: the proxy as its API, a client key (or a placeholder) as its key."""
    env = dict(environ)
    env["ANTHROPIC_BASE_URL"] = address.url
    env["ANTHROPIC_API_KEY"] = key or PLACEHOLDER_KEY
    env.pop("ANTHROPIC_AUTH_TOKEN", None)  # Claude Code would send it instead, and it is no key of this proxy
    return env


def code(settings: Settings, claude_args: Sequence[str], environ: Mapping[str, str]) -> int:
    """`ccproxy code`: the exit code of Claude Code, or ours when it could not be run."""
    claude = shutil.which("claude", path=environ.get("PATH"))
    if claude is None:
        print(f"ccproxy: `claude` is not on PATH; {CLAUDE_INSTALL_HINT}", file=sys.stderr)
        return EXIT_NO_CLAUDE
    address = Address.of(settings)
    if health(address) is None:
        started = start_background(address, environ)
        problem = wait_ready(address, started)
        if problem is not None:
            print(f"ccproxy: could not start the proxy on {address.url}: {problem}", file=sys.stderr)
            print(f"ccproxy: its log: {started.log_path}", file=sys.stderr)
            return EXIT_START_FAILED
        print(
            f"ccproxy: started the proxy on {address.url} (pid {started.pid}, log {started.log_path})", file=sys.stderr
        )
    try:
        return subprocess.call([claude, *claude_args], env=claude_env(environ, address, client_key(settings)))
    except KeyboardInterrupt:  # Claude Code had the terminal and handled it; its exit status is lost
        return 130


def status(settings: Settings, *, as_json: bool = False) -> int:
    """`ccproxy status`: 0 and a description when a ccproxy answers on the configured address, else 1."""
    address = Address.of(settings)
    found = health(address)
    if found is None:
        print(f"ccproxy: nothing answers on {address.url}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    # The admin key opens /v1/status; without one it answers on loopback, to any client key the /v1 paths need.
    key = admin_key(settings) or client_key(settings)
    headers = {"x-api-key": key} if key else {}
    detail = get_json(address.url + "/v1/status", headers, timeout=5.0)
    if not isinstance(detail, dict) or detail.get("type") == "error":
        detail = {"health": found, "status_error": _error_text(detail)}
    else:
        today = usage_today(address, headers)
        if today is not None:
            detail["usage_today"] = today
    if as_json:
        print(json.dumps(detail, indent=2))
    else:
        print(render_status(address, detail))
    return 0


TODAY_COUNTS = ("requests", "errors", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests")


def usage_today(address: Address, headers: Mapping[str, str]) -> dict[str, Any] | None:
    """Today's (UTC) totals from GET /v1/usage and whose they are (`scope`); None when it does not answer them (the
    usage plugin disabled, a remote proxy refusing the key) or answers something else."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    answer = get_json(f"{address.url}/v1/usage?day={day}", headers, timeout=5.0)
    if not isinstance(answer, dict) or answer.get("object") != "usage" or not isinstance(answer.get("totals"), dict):
        return None
    totals = answer["totals"]
    today: dict[str, Any] = {"day": day, "scope": str(answer.get("scope") or "process")}
    for name in TODAY_COUNTS:
        value = totals.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None  # not what ccproxy answers: nothing shown rather than a wrong figure
        today[name] = value
    return today


def _error_text(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        return str(answer["error"].get("message"))
    return "no answer from /v1/status"


def render_status(address: Address, detail: Mapping[str, Any]) -> str:
    """The text `ccproxy status` prints."""
    if "status_error" in detail:
        found = detail["health"]
        return (
            f"ccproxy {found.get('version')} answers on {address.url} (core {found.get('core')})\n"
            f"details unavailable: {detail['status_error']}"
        )
    lines = [
        f"ccproxy {detail['version']} on {address.url}: pid {detail['pid']}, {detail['workers']} worker(s), "
        f"core {detail['core']}, up {detail['uptime_seconds']:.0f} s, {detail['in_flight']} request(s) in flight "
        f"(this worker)"
    ]
    today = detail.get("usage_today")
    if today is not None:
        unpriced = f", {today['unpriced_requests']} without a price" if today.get("unpriced_requests") else ""
        lines.append(
            f"today ({today['day']} UTC, {today['scope']}): {today['requests']} request(s), {today['errors']} "
            f"error(s), {today['input_tokens']} input and {today['output_tokens']} output tokens, "
            f"${today['cost_usd']:.4f}{unpriced}"
        )
    lines.append("routes:")
    for route in detail["routes"]:
        lines.append(f"  {route['pattern'] or '(direct)':<24} -> {', '.join(route['targets'])}")
    lines.append("backends:")
    for name, backend in detail["backends"].items():
        breaker = backend["breaker"] or "unknown"
        limit = backend["max_connections"] or "unlimited"
        lines.append(
            f"  {name:<16} {backend['provider']:<12} {backend['base_url']}  breaker {breaker}, connections {limit}"
        )
    return "\n".join(lines)


def load_for(command: str, load: Callable[[], Settings]) -> Settings | int:
    """Settings for `command`, or the exit code after printing a configuration error."""
    try:
        settings = load()
    except SettingsError as exc:
        print(f"ccproxy {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    return settings
