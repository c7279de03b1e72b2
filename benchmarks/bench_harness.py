"""What load.py and loop_delay.py share: child processes, /proc readings and a minimal fast HTTP/1.1 client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0
API_KEY = "sk-bench"
BIG_MODEL = "gpt-5"
SMALL_MODEL = "gpt-5-mini"
# Environment that would change how the proxy is configured: removed so the developer's shell cannot leak in.
# CCPROXY_ENABLE_CYTHON is kept: it is how a run of the pure core is asked for.
PROXY_ENV_PREFIXES = ("OPENAI_", "OPENROUTER_", "ANTHROPIC_", "CCPROXY_", "SANIC_")
PROXY_ENV_NAMES = frozenset(
    {"BIG_MODEL_NAME", "SMALL_MODEL_NAME", "HOST", "PORT", "LOG_LEVEL", "WEB_CONCURRENCY", "REQUEST_TIMEOUT"}
    | {"CONNECT_TIMEOUT"}
)
KEEP_ENV = ("CCPROXY_ENABLE_CYTHON",)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


# -------------------------------------------------------------------------------------------- processes


@dataclass
class Child:
    """A process started in its own session, output captured to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} log ({self.log_path}) ---\n{self.log_text()[-chars:]}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole process group (this child and the workers it forked)."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def spawn(name: str, argv: list[str], *, env: Mapping[str, str], cwd: Path, log_dir: Path) -> Child:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env), cwd=cwd, start_new_session=True
        )
    return Child(name, popen, log_path)


def wait_until(child: Child, check: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `check`; on failure (the child died, or the deadline passed) stop the child and raise RuntimeError."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with {child.popen.returncode} before {what}")
            if check():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{child.name} did not {what} within {timeout:.0f} s")
    except BaseException as exc:  # also Ctrl-C: a child that is not handed back must not outlive us
        child.stop()
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{exc}\n{child.log_tail()}") from None
        raise


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key in KEEP_ENV or not (key.startswith(PROXY_ENV_PREFIXES) or key in PROXY_ENV_NAMES)
    }
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_upstream(log_dir: Path, cpu: int | None) -> tuple[Child, int]:
    """benchmarks/fast_upstream.py on a free port; returns the child and its port."""
    argv = [sys.executable, str(BENCH_DIR / "fast_upstream.py"), "--port", "0"]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    child = spawn("fast-upstream", argv, env=clean_env({}), cwd=log_dir, log_dir=log_dir)
    found: list[int] = []

    def port_printed() -> bool:
        match = re.search(r"^PORT=(\d+)$", child.log_text(), re.MULTILINE)
        if match:
            found.append(int(match.group(1)))
        return bool(match)

    wait_until(child, port_printed, "print its port")
    return child, found[0]


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get_json(url: str, timeout: float = 2.0) -> Any:
    import json

    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def start_proxy(
    log_dir: Path,
    upstream_port: int,
    *,
    workers: int = 1,
    cpus: str | None = "0",
    extra_env: Mapping[str, str] | None = None,
    config: str | None = None,
    name: str = "proxy",
    blocked_modules: tuple[str, ...] = (),
    wrapper: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
) -> tuple[Child, int, dict[str, Any]]:
    """`python -m ccproxy serve` against the fast upstream, in a scratch cwd so no .env or plugins.toml is read.

    With `config` (plugins.toml text: [backends] and [routes]) the proxy reads that instead of the legacy variables.
    `blocked_modules` cannot be imported in the proxy (test-only packages of this venv that a production install
    lacks, for a production-shaped memory figure); `wrapper` runs it under another program (valgrind), which may
    need a longer `ready_timeout`. Returns the child, its port and its `GET /` answer (which says which core runs).
    """
    port = free_port()
    workdir = log_dir / f"{name}-cwd"
    workdir.mkdir(exist_ok=True)
    legacy = {
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "OPENAI_API_KEY": API_KEY,
        "BIG_MODEL_NAME": BIG_MODEL,
        "SMALL_MODEL_NAME": SMALL_MODEL,
    }
    if config is not None:
        (workdir / "plugins.toml").write_text(config, encoding="utf-8")
        legacy = {"CCPROXY_CONFIG": str(workdir / "plugins.toml")}
    settings = {
        **legacy,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": str(workers),
        "CCPROXY_ENV_FILE": str(workdir / "no.env"),
        **(extra_env or {}),
    }
    argv = [sys.executable, "-m", "ccproxy", "serve"]
    if blocked_modules:
        blocking = f"import sys; sys.modules.update(dict.fromkeys({list(blocked_modules)!r}))"
        argv = [sys.executable, "-c", f"{blocking}; from ccproxy.cli import main; sys.exit(main(['serve']))"]
    argv = [*wrapper, *argv]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    child = spawn(name, argv, env=clean_env(settings), cwd=workdir, log_dir=log_dir)
    health: dict[str, Any] = {}

    def healthy() -> bool:
        try:
            health.update(http_get_json(f"http://127.0.0.1:{port}/", timeout=1.0))
        except (OSError, ValueError):
            return False
        return health.get("status") == "ok"

    wait_until(child, healthy, "answer GET / with status ok", timeout=ready_timeout)
    return child, port, health


def start_floor(log_dir: Path, upstream_port: int, *, cpus: str | None = "0") -> tuple[Child, int]:
    """benchmarks/floor_proxy.py (Sanic + aiohttp forwarding bytes) against the fast upstream."""
    port = free_port()
    workdir = log_dir / "floor-cwd"
    workdir.mkdir(exist_ok=True)
    argv = [sys.executable, str(BENCH_DIR / "floor_proxy.py"), "--port", str(port)]
    argv += ["--upstream", f"http://127.0.0.1:{upstream_port}/v1/chat/completions", "--api-key", API_KEY]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    child = spawn("floor", argv, env=clean_env({}), cwd=workdir, log_dir=log_dir)

    def healthy() -> bool:
        try:
            return bool(http_get_json(f"http://127.0.0.1:{port}/", timeout=1.0).get("status") == "ok")
        except (OSError, ValueError):
            return False

    wait_until(child, healthy, "answer GET /")
    return child, port


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ccproxy-bench-"))


# ----------------------------------------------------------------------------------------------- /proc


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant (Sanic's worker processes when it runs several)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time of one process: the sum of its threads' schedstat (ns precision), else utime+stime (ticks)."""
    total_ns = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                total_ns += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    except OSError:
        return 0.0
    if total_ns:
        return total_ns / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    return {member: cpu_seconds(member) for member in process_tree(pid)}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings by the processes present in both (plus any that started in between)."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def cpu_busy_seconds() -> dict[int, float]:
    """Busy time of every CPU from /proc/stat: what ran there, ours or anybody else's."""
    busy: dict[int, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit():
            values = [int(v) for v in rest.split()]
            # user nice system idle iowait irq softirq steal: everything but idle and iowait
            busy[int(name[3:])] = (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS
    return busy


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int, field: str = "VmRSS") -> int:
    return sum(status_kb(member, field) for member in process_tree(pid))


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM of the tree to the current RSS (`clear_refs` 5); False where the kernel does not allow it."""
    ok = True
    for member in process_tree(pid):
        try:
            Path(f"/proc/{member}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


# ----------------------------------------------------------------------------------------------- client


class ResponseError(Exception):
    """The connection closed or sent something that is not a complete HTTP/1.1 response."""


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: send a request's bytes, wait for the complete response.

    Hand-rolled so that the load generator costs a fraction of what the server under test does.
    """

    def __init__(self, marker: bytes | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        # When the first read holding `marker` came (time.perf_counter(); 0.0: not yet): the time to first token.
        self.marker = marker
        self.first_at = 0.0
        self._reset()

    def _reset(self) -> None:
        self.buffer.clear()
        self.body_start = -1
        self.needed = -1
        self.chunked = False
        self.position = 0
        self.status = 0
        self.first_at = 0.0

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1", marker: bytes | None = None) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(marker), host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ResponseError(f"connection closed: {exc}"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Status and raw body bytes (chunk framing left in) of the response to `request`."""
        if self.transport is None:
            raise ResponseError("connection is closed")
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def data_received(self, data: bytes) -> None:
        if self.marker is not None and not self.first_at and self.marker in data:
            self.first_at = time.perf_counter()
        self.buffer += data
        try:
            complete = self._parse()
        except (ValueError, IndexError) as exc:
            complete = False
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(ResponseError(f"bad response: {exc}"))
        if complete and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.status, bytes(self.buffer[self.body_start :])))

    def _parse(self) -> bool:
        buffer = self.buffer
        if self.body_start < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            self.body_start = self.position = end + 4
            if b"\r\ntransfer-encoding: chunked" in head:
                self.chunked = True
            else:
                start = head.find(b"\r\ncontent-length:")
                length = 0 if start < 0 else int(head[start + 17 :].split(b"\r\n", 1)[0])
                self.needed = self.body_start + length
        if not self.chunked:
            return len(buffer) >= self.needed
        while True:
            line_end = buffer.find(b"\r\n", self.position)
            if line_end < 0:
                return False
            size = int(bytes(buffer[self.position : line_end]).split(b";", 1)[0], 16)
            if size == 0:
                return len(buffer) >= line_end + 4  # no trailers: the last chunk's line is followed by CRLF
            chunk_end = line_end + 2 + size + 2
            if len(buffer) < chunk_end:
                return False
            self.position = chunk_end


def http_request(
    method: str, path: str, port: int, body: bytes = b"", headers: Mapping[str, str] | None = None
) -> bytes:
    """A complete HTTP/1.1 request as bytes, built once and sent many times."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is there (it is, with Sanic): a cheaper client leaves more CPU to the upstream.

    SIGINT and SIGTERM cancel the run (CancelledError reaches the caller, whose finally blocks tear down): a
    KeyboardInterrupt raised by a plain signal handler could land in a protocol callback and be swallowed.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_cancel_on_signals(coro))
    return uvloop.run(_cancel_on_signals(coro))


async def _cancel_on_signals(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await coro
    finally:
        for sig, handler in saved.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]
