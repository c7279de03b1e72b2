"""Soak test: the real proxy process under many mixed requests, its memory and open file descriptors watched.

    .venv/bin/python benchmarks/soak.py [--requests 20000] [--concurrency 32] [--json results.json]

Starts the fake OpenAI upstream (tests/support/fake_openai.py, scripted by prompt markers) and `python -m ccproxy
serve` against it (tests/support/proxy_process.py), then sends a fixed, seeded mix of requests with bounded
concurrency: small messages, ~50 KB Claude Code requests (a capture from tests/fixtures/claude-code), streams,
count_tokens, upstream errors (429, 500, 503 before the first byte, an error event mid-stream), invalid bodies, and
clients that disconnect mid-stream. Each answer is checked against what its kind must get (status; for streams, how
the stream ends). The proxy's RSS and open file descriptors (/proc/<pid>/status, /proc/<pid>/fd, summed over its
processes) are read after a warm-up ("before"), every `--sample-every` requests ("during") and once the clients have
closed their connections ("after"); a table of them is printed. Exit status 1 when an answer was not what its kind
must get, the proxy logged a traceback, or it holds more descriptors after than before (beyond `--fd-margin`).

tests/e2e/test_soak.py runs a short variant in the suite; benchmarks/README.md has the figures of a full run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: the fake upstream and process helpers live in tests/support
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.proxy_process import (  # noqa: E402 — after the path set-up above
    FakeUpstream,
    ProxyServer,
    start_fake_openai,
    start_proxy,
)

API_KEY = "sk-soak-upstream-0123456789"
CLAUDE_CODE_CAPTURE = REPO_ROOT / "tests" / "fixtures" / "claude-code" / "plain_json.00.json"
REQUEST_TIMEOUT = 60.0
SETTLE_SECONDS = 1.5  # after the clients closed their connections, before "after" is read
RESET_EVERY = 1000  # the fake upstream keeps every request's body: forget them now and then


# ----------------------------------------------------------------------------------------------- the request mix


@dataclass(frozen=True)
class Kind:
    """One kind of request in the mix: what is sent and what must come back."""

    name: str
    weight: int
    path: str
    body: bytes
    status: int  # the HTTP status it must get (0: the client disconnects, nothing to check)
    stream_end: str | None = None  # for streams: the type of the last event ("message_stop" or "error")


def _small(text: str, *, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    }
    return {**body, "stream": True} if stream else body


def _claude_code(*, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(CLAUDE_CODE_CAPTURE.read_text(encoding="utf-8"))["request"]["body"]
    return {**body, "stream": stream}


def _count_tokens_body() -> dict[str, Any]:
    body = _claude_code(stream=False)
    for name in ("max_tokens", "stream", "metadata", "context_management", "output_config"):
        body.pop(name, None)
    return body


def request_kinds() -> list[Kind]:
    def encoded(body: dict[str, Any]) -> bytes:
        return json.dumps(body).encode()

    messages, count = "/v1/messages", "/v1/messages/count_tokens"
    return [
        Kind("small", 26, messages, encoded(_small("Say hello.")), 200),
        Kind("small-stream", 20, messages, encoded(_small("Say hello.", stream=True)), 200, "message_stop"),
        Kind("claude-code-50KB", 10, messages, encoded(_claude_code(stream=False)), 200),
        Kind("claude-code-50KB-stream", 8, messages, encoded(_claude_code(stream=True)), 200, "message_stop"),
        Kind("count-tokens-50KB", 8, count, encoded(_count_tokens_body()), 200),
        Kind("upstream-429", 5, messages, encoded(_small("FAIL_429")), 429),
        Kind("upstream-500", 3, messages, encoded(_small("FAIL_500")), 500),
        Kind("upstream-503-stream", 3, messages, encoded(_small("FAIL_503", stream=True)), 503),
        Kind("midstream-error", 3, messages, encoded(_small("MIDSTREAM_ERROR", stream=True)), 200, "error"),
        Kind("invalid-body", 6, messages, b'{"model": "claude-haiku-4-5", "messages": "hi"}', 400),
        Kind("client-disconnect", 8, messages, encoded(_small("HANG_STREAM", stream=True)), 0),
    ]


def schedule(kinds: list[Kind], total: int, seed: int) -> list[Kind]:
    """`total` kinds drawn by weight, the same for the same seed."""
    return random.Random(seed).choices(kinds, weights=[kind.weight for kind in kinds], k=total)


# ----------------------------------------------------------------------------------------------- /proc readings


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Sanic's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def status_kb(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


TCP_LISTEN = "0A"


def tcp_ports() -> dict[str, tuple[int, int, str]]:
    """Socket inode -> (local port, remote port, state) of every TCP socket on this machine."""
    found: dict[str, tuple[int, int, str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            found[inode] = (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state)
    return found


@dataclass
class Descriptors:
    """One process's open descriptors: all of them, and its connections to the upstream and from clients."""

    total: int = 0
    upstream: int = 0
    clients: int = 0


def open_fds(pid: int, ports: dict[str, tuple[int, int, str]], proxy_port: int, upstream_port: int) -> Descriptors:
    found = Descriptors()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    found.total = len(names)
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            local, remote, state = ports.get(target[8:-1], (0, 0, ""))
            found.upstream += remote == upstream_port
            found.clients += local == proxy_port and state != TCP_LISTEN
    return found


@dataclass
class Reading:
    """One look at the proxy's processes. `other_fds`: descriptors that are neither a connection to the upstream
    (idle ones stay in aiohttp's keep-alive pool for up to a minute) nor one from a client."""

    phase: str
    requests: int
    seconds: float
    rss_mb: float
    peak_rss_mb: float
    fds: int
    upstream_connections: int
    client_connections: int

    @property
    def other_fds(self) -> int:
        return self.fds - self.upstream_connections - self.client_connections


def read_proxy(proxy: ProxyServer, upstream: FakeUpstream, phase: str, requests: int, started: float) -> Reading:
    tree = process_tree(proxy.process.popen.pid)
    ports = tcp_ports()
    fds = [open_fds(member, ports, proxy.port, upstream.port) for member in tree]
    return Reading(
        phase=phase,
        requests=requests,
        seconds=round(time.monotonic() - started, 1),
        rss_mb=round(sum(status_kb(member, "VmRSS") for member in tree) / 1024, 1),
        peak_rss_mb=round(sum(status_kb(member, "VmHWM") for member in tree) / 1024, 1),
        fds=sum(found.total for found in fds),
        upstream_connections=sum(found.upstream for found in fds),
        client_connections=sum(found.clients for found in fds),
    )


# ----------------------------------------------------------------------------------------------- the client


@dataclass
class Outcomes:
    """What came back, by kind: `ok` and the unexpected answers (kind, what)."""

    ok: Counter[str] = field(default_factory=Counter)
    unexpected: list[tuple[str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def record(self, kind: Kind, problem: str | None, seconds: float) -> None:
        if problem is None:
            self.ok[kind.name] += 1
            self.latencies.append(seconds)
        else:
            self.unexpected.append((kind.name, problem))


def last_event_type(body: bytes) -> str | None:
    """The type of the last `data:` event of an SSE body."""
    for line in reversed(body.splitlines()):
        if line.startswith(b"data:"):
            try:
                return str(json.loads(line[5:]).get("type"))
            except (ValueError, AttributeError):
                return None
    return None


async def send(session: aiohttp.ClientSession, base_url: str, kind: Kind) -> str | None:
    """Send one request of `kind`; None when the answer is what the kind must get, else what was wrong."""
    headers = {"content-type": "application/json", "x-api-key": "soak"}
    async with session.post(base_url + kind.path, data=kind.body, headers=headers) as response:
        body = await response.read()
    if response.status != kind.status:
        return f"status {response.status}: {body[:200]!r}"
    if kind.stream_end is not None and last_event_type(body) != kind.stream_end:
        return f"stream ended with {last_event_type(body)!r}, not {kind.stream_end!r}"
    if kind.stream_end is None and response.status >= 400:
        error = json.loads(body)
        if error.get("type") != "error" or not error.get("error", {}).get("message"):
            return f"error not in the Anthropic envelope: {body[:200]!r}"
    return None


async def disconnect_mid_stream(port: int, kind: Kind) -> str | None:
    """Send a stream request on a connection of its own, read until the first text arrives, then hang up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"POST {kind.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"x-api-key: soak\r\ncontent-length: {len(kind.body)}\r\n\r\n"
        )
        writer.write(head.encode() + kind.body)
        seen = b""
        while b"content_block_delta" not in seen:
            chunk = await reader.read(4096)
            if not chunk:
                return f"connection closed before any text: {seen[:200]!r}"
            seen = seen[-4096:] + chunk
        return None
    finally:
        writer.transport.abort()  # a client going away without a goodbye, as a killed Claude Code does


async def drive(
    proxy: ProxyServer,
    upstream: FakeUpstream,
    plan: list[Kind],
    concurrency: int,
    outcomes: Outcomes,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 0,
) -> None:
    """Send every request of `plan`, at most `concurrency` at a time, over keep-alive connections closed at the end."""
    queue: asyncio.Queue[Kind] = asyncio.Queue()
    for kind in plan:
        queue.put_nowait(kind)
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                kind = queue.get_nowait()
                started = time.monotonic()
                try:
                    if kind.status == 0:
                        problem = await asyncio.wait_for(disconnect_mid_stream(proxy.port, kind), REQUEST_TIMEOUT)
                    else:
                        problem = await send(session, proxy.base_url, kind)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                outcomes.record(kind, problem, time.monotonic() - started)
                done += 1
                count = done  # other workers move `done` on while this one awaits below
                if on_progress is not None and progress_every and count % progress_every == 0:
                    on_progress(count)
                if count % RESET_EVERY == 0:
                    await asyncio.to_thread(upstream.reset)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


# ----------------------------------------------------------------------------------------------- the run


@dataclass
class SoakResult:
    readings: list[Reading]
    outcomes: Outcomes
    requests: int
    concurrency: int
    seconds: float
    core: str
    traceback_logged: bool
    hung_upstream_streams: int  # HANG_STREAM upstream requests of the last segment the proxy never closed

    @property
    def before(self) -> Reading:
        return self.readings[0]

    @property
    def after(self) -> Reading:
        """The first reading once the clients have closed their connections."""
        return next(reading for reading in self.readings if reading.phase.startswith("after"))

    def leaks(self, margin: int) -> list[str]:
        """What the readings show held on to: descriptors other than connections beyond `margin`, client
        connections left open, more upstream connections than requests ever ran at once, and — when the last
        reading came after the upstream keep-alive pool's idle timeout — any descriptor beyond `margin`."""
        found = []
        before, after, last = self.before, self.after, self.readings[-1]
        if after.other_fds > before.other_fds + margin:
            found.append(f"descriptors other than connections: {before.other_fds} before, {after.other_fds} after")
        if after.client_connections:
            found.append(f"{after.client_connections} client connections open after the clients closed theirs")
        if after.upstream_connections > self.concurrency:
            found.append(
                f"{after.upstream_connections} upstream connections for {self.concurrency} concurrent requests"
            )
        if last is not after and last.fds > before.fds + margin:
            found.append(f"{last.fds} descriptors after the keep-alive timeout, {before.fds} before")
        if self.hung_upstream_streams:
            found.append(f"{self.hung_upstream_streams} upstream streams left open after their client went away")
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            **{name: value for name, value in asdict(self).items() if name not in ("outcomes", "readings")},
            "readings": [{**asdict(reading), "other_fds": reading.other_fds} for reading in self.readings],
            "as_expected": dict(self.outcomes.ok),
            "unexpected": self.outcomes.unexpected,
        }


def run_soak(
    log_dir: Path,
    *,
    requests: int,
    concurrency: int,
    warmup: int,
    seed: int = 1,
    sample_every: int = 0,
    idle_wait: float = 0.0,
    show: Callable[[str], None] = lambda line: None,
) -> SoakResult:
    """Start the fake upstream and the proxy, warm up, read, drive `requests` requests, read (and read again after
    `idle_wait` seconds, when positive), stop everything."""
    upstream = start_fake_openai(log_dir)
    proxy: ProxyServer | None = None
    try:
        proxy = start_proxy(
            log_dir,
            upstream=upstream,
            api_key=API_KEY,
            big_model="gpt-5",
            small_model="gpt-5-mini",
            log_level="WARNING",
        )
        health = proxy.health() or {}
        kinds = request_kinds()
        started = time.monotonic()
        readings: list[Reading] = []

        def read(phase: str, done: int) -> None:
            assert proxy is not None
            readings.append(read_proxy(proxy, upstream, phase, done, started))
            show(format_reading(readings[-1]))

        asyncio.run(drive(proxy, upstream, schedule(kinds, warmup, seed + 1), concurrency, Outcomes()))
        time.sleep(SETTLE_SECONDS)
        read("before (after warm-up)", 0)
        outcomes = Outcomes()
        load_started = time.monotonic()
        plan = schedule(kinds, requests, seed)
        asyncio.run(
            drive(proxy, upstream, plan, concurrency, outcomes, lambda done: read("during", done), sample_every)
        )
        seconds = time.monotonic() - load_started
        time.sleep(SETTLE_SECONDS)
        read("after (clients closed)", requests)
        hung = [
            record
            for record in upstream.chat_requests()
            if "HANG_STREAM" in json.dumps(record.get("body")) and not record.get("cancelled")
        ]
        if idle_wait > 0:
            time.sleep(idle_wait)
            read(f"after {idle_wait:.0f} s idle", requests)
        return SoakResult(
            readings=readings,
            outcomes=outcomes,
            requests=requests,
            concurrency=concurrency,
            seconds=seconds,
            core=str(health.get("core")),
            traceback_logged="Traceback (most recent call last)" in proxy.process.log_text(),
            hung_upstream_streams=len(hung),
        )
    finally:
        if proxy is not None:
            proxy.process.stop()
        upstream.process.stop()


# ----------------------------------------------------------------------------------------------- output

TABLE_HEAD = (
    "| phase | requests done | s | RSS MB | peak RSS MB | open fds | upstream conns | client conns | other fds |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def format_reading(reading: Reading) -> str:
    return (
        f"| {reading.phase} | {reading.requests:,} | {reading.seconds:.1f} | {reading.rss_mb:.1f} | "
        f"{reading.peak_rss_mb:.1f} | {reading.fds} | {reading.upstream_connections} | {reading.client_connections} | "
        f"{reading.other_fds} |"
    )


def report(result: SoakResult, margin: int) -> str:
    latencies = sorted(result.outcomes.latencies)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    leaks = result.leaks(margin)
    lines = [
        f"{result.requests:,} requests, concurrency {result.concurrency}, {result.seconds:.1f} s "
        f"({result.requests / result.seconds:,.0f} req/s), {result.core} core; latency p50 {pct(0.5):.1f} ms, "
        f"p99 {pct(0.99):.1f} ms (disconnecting clients not counted)",
        "",
        TABLE_HEAD,
        *(format_reading(reading) for reading in result.readings),
        "",
        "| kind | as expected |",
        "| --- | ---: |",
        *(f"| {name} | {count:,} |" for name, count in sorted(result.outcomes.ok.items())),
        "",
        f"RSS after - before: {result.after.rss_mb - result.before.rss_mb:+.1f} MB; unexpected answers: "
        f"{len(result.outcomes.unexpected)}; upstream streams left open after a client went away (last "
        f"{RESET_EVERY} requests): {result.hung_upstream_streams}; traceback in the proxy log: "
        f"{'yes' if result.traceback_logged else 'no'}; leaks: {'; '.join(leaks) if leaks else 'none'}",
    ]
    lines += [f"  unexpected: {name}: {problem}" for name, problem in result.outcomes.unexpected[:20]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--sample-every", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fd-margin", type=int, default=5, help="descriptors after may exceed before by this many")
    parser.add_argument(
        "--idle-wait",
        type=float,
        default=65.0,
        help="read once more after this long idle (the upstream keep-alive "
        "pool closes idle connections after 60 s); 0: do not",
    )
    parser.add_argument("--json", type=Path, help="write the readings and outcomes here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (their path is printed)")
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="ccproxy-soak-"))
    print(TABLE_HEAD, flush=True)
    result = run_soak(
        log_dir,
        requests=args.requests,
        concurrency=args.concurrency,
        warmup=args.warmup,
        seed=args.seed,
        sample_every=args.sample_every,
        idle_wait=args.idle_wait,
        show=lambda line: print(line, flush=True),
    )
    print("\n" + report(result, args.fd_margin))
    if args.json:
        args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    if args.keep_logs:
        print(f"logs: {log_dir}")
    else:
        shutil.rmtree(log_dir)
    failed = result.outcomes.unexpected or result.traceback_logged or result.leaks(args.fd_margin)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
