"""Load test of the real proxy process against a fast fake upstream, every figure next to the upstream alone.

    .venv/bin/python benchmarks/load.py [--quick] [--json results.json] [--workers N] [--profile out.txt]

The proxy runs alone on CPU 0 (`taskset`); this load generator and benchmarks/fast_upstream.py share CPU 1. For
each scenario and concurrency the same load is sent first straight to the upstream (the equivalent OpenAI request)
and then through the proxy, each for a fixed time after a warm-up. Proxy CPU per request comes from the proxy's
/proc CPU time (all its processes) over the measured window divided by the requests completed in it. See
benchmarks/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench_harness import (
    API_KEY,
    BIG_MODEL,
    REPO_ROOT,
    REQUEST_TIMEOUT,
    Child,
    Connection,
    ResponseError,
    cpu_busy_seconds,
    cpu_delta,
    http_request,
    percentile,
    process_tree,
    reset_peak_rss,
    run_async,
    scratch_dir,
    start_floor,
    start_proxy,
    start_upstream,
    status_kb,
    tree_cpu_seconds,
    tree_rss_kb,
)
from bench_payloads import claude_code_request, conversation_turns, dumps, request_plan, small_request
from loop_delay import describe, measure_loop_delay, probe

from ccproxy.core.request import convert_request

CONCURRENCY = (1, 8, 64)
PACED_GAP_MS = 1.0
STREAM_EVENTS = 101  # 100 chunks and [DONE], one every gap_ms when paced
IDLE_RSS_TARGET_MB = 60.0
# Installed in this venv for the tests only; Sanic imports trustme (and with it cryptography) whenever it is there.
# The idle-RSS target is judged on a proxy that cannot import them, as after `pip install ccproxy-server`.
TEST_ONLY_MODULES = ("trustme",)
CONNECT_TIMEOUT = 5.0
PROFILE_TOP = 25
# Above this share of a pinned CPU used by processes that are not part of the benchmark, a run is flagged.
NOISE_LIMIT = 0.05
# --ops-compare: the client key of the "on" proxy, and the built-ins the "off" proxy runs without.
OPS_CLIENT_KEY = "ck-bench-client-key-0123456789"
OPS_BUILTINS = ("ccproxy.client_keys", "ccproxy.usage", "ccproxy.metrics")
OPS_TARGET_PERCENT = 10.0
# claude-code-conversation: the turns each connection's session goes through before it starts again.
CONVERSATION_TURNS = 8
# The request(s) each connection sends in turn, per connection (connection i uses entry i modulo their number).
Requests = tuple[tuple[bytes, ...], ...]
# --transport-compare: the transport of each side.
TRANSPORT_SIDES = {"off": "aiohttp", "on": "lean"}


@dataclass(frozen=True)
class Scenario:
    """One kind of request, sent through the proxy and straight to the upstream."""

    name: str
    description: str
    anthropic_body: dict[str, Any]
    stream: bool
    target_cpu_us: float | None
    gap_ms: float = 0.0
    # A conversation per connection instead of one body: session -> its turns, which the connection sends in turn.
    conversation: Callable[[int], list[dict[str, Any]]] | None = None

    def _bodies(self, connections: int) -> list[list[dict[str, Any]]]:
        """The bodies each connection sends in turn (one list for all when there is no conversation)."""
        if self.conversation is None:
            return [[self.anthropic_body]]
        return [self.conversation(session) for session in range(connections)]

    def proxy_request(self, port: int, connections: int = 1) -> Requests:
        """The request(s) each connection sends in turn."""
        return tuple(tuple(self._proxy_request(port, body) for body in bodies) for bodies in self._bodies(connections))

    def _proxy_request(self, port: int, body: dict[str, Any]) -> bytes:
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": "2023-06-01",
            "x-api-key": OPS_CLIENT_KEY,  # a configured client key when the operations features are on
        }
        return http_request("POST", "/v1/messages", port, dumps(body).encode(), headers)

    def direct_request(self, port: int, connections: int = 1) -> Requests:
        """The OpenAI request(s) the proxy sends for the same bodies (converted by the same core)."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
        plan = partial(request_plan, stream=self.stream)
        return tuple(
            tuple(
                http_request(
                    "POST", "/v1/chat/completions", port, dumps(convert_request(body, plan())).encode(), headers
                )
                for body in bodies
            )
            for bodies in self._bodies(connections)
        )

    def proxy_marker(self) -> bytes | None:
        """What marks the first text delta in the proxy's answer (its arrival is the time to first token)."""
        return b'"text_delta"' if self.stream else None

    def direct_marker(self) -> bytes | None:
        """The same in the upstream's own stream: its first chunk with text (the one before is the role chunk)."""
        return b'"delta":{"content":"' if self.stream else None

    def proxy_check(self) -> Callable[[bytes], bool]:
        if self.stream:
            return lambda body: b"event: message_stop" in body[-120:]
        return lambda body: b'"stop_reason":"tool_use"' in body

    def direct_check(self) -> Callable[[bytes], bool]:
        if self.stream:
            return lambda body: b"data: [DONE]" in body[-40:]
        return lambda body: b'"finish_reason":"tool_calls"' in body


def conversation_session(session: int) -> list[dict[str, Any]]:
    """One connection's Claude Code session: CONVERSATION_TURNS turns of a ~160 KB conversation, then again."""
    return conversation_turns(turns=CONVERSATION_TURNS, session=session)


def scenarios(paced_gap_ms: float = PACED_GAP_MS) -> dict[str, Scenario]:
    return {
        "small-json": Scenario("small-json", "tiny request, non-stream", small_request(), False, 150.0),
        "claude-code-json": Scenario(
            "claude-code-json",
            "the 78 KB Claude Code request (tool_bash_all_tools.01), non-stream",
            claude_code_request(stream=False),
            False,
            300.0,
        ),
        "claude-code-conversation": Scenario(
            "claude-code-conversation",
            f"a Claude Code session per connection: {CONVERSATION_TURNS} turns of a long conversation (the 78 KB "
            "request plus 60 tool calls, ~160 KB), each the next turn of the one before, then from the first again",
            claude_code_request(stream=False),
            False,
            None,
            conversation=conversation_session,
        ),
        "stream-100": Scenario(
            "stream-100", "tiny request, 100-chunk stream written at once", small_request(stream=True), True, 600.0
        ),
        "stream-100-paced": Scenario(
            "stream-100-paced",
            f"tiny request, 100-chunk stream, one chunk every {paced_gap_ms:g} ms",
            small_request(stream=True),
            True,
            600.0,
            gap_ms=paced_gap_ms,
        ),
    }


# ------------------------------------------------------------------------------------------------ load


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the proxy and the upstream + load generator run on (empty: not pinned)."""

    proxy: frozenset[int] = frozenset()
    client: frozenset[int] = frozenset()


@dataclass
class LoadState:
    stop: bool = False
    measuring: bool = False
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)  # seconds from sending to the first text delta (streams)
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)


@dataclass
class Run:
    """One measured window. `target`: "proxy" (ccproxy), "floor" (floor_proxy.py) or "direct" (the upstream alone);
    the server_* fields are those of the proxy or floor process (None for direct runs)."""

    scenario: str
    target: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_us: float | None
    upstream_cpu_us: float
    client_cpu_us: float
    server_cpu_busy: float | None
    cpu1_busy: float
    # Busy time of the pinned CPUs not explained by the server, upstream and client: other processes (noise).
    server_cpu_foreign: float | None = None
    client_cpu_foreign: float | None = None
    peak_rss_mb: float | None = None
    error_kinds: dict[str, int] = field(default_factory=dict)
    ttft_p50_ms: float | None = None  # time to the first text delta (stream scenarios)
    ttft_p99_ms: float | None = None
    lag_p50_ms: float | None = None  # `GET /` latency meanwhile (--lag-probe): the event loop's delay
    lag_p99_ms: float | None = None


async def _worker(
    port: int,
    requests: tuple[bytes, ...],  # sent in turn
    check: Callable[[bytes], bool],
    state: LoadState,
    marker: bytes | None = None,
    delay: float = 0.0,
) -> None:
    connection: Connection | None = None
    sent = 0
    await asyncio.sleep(delay)
    try:
        while not state.stop:
            try:
                if connection is None or connection.transport is None:
                    connection = await asyncio.wait_for(Connection.open(port, marker=marker), CONNECT_TIMEOUT)
                started = time.perf_counter()
                status, body = await connection.send(requests[sent % len(requests)])
                sent += 1
                elapsed = time.perf_counter() - started
                ok, kind = status == 200 and check(body), f"HTTP {status}"
            except (OSError, ResponseError, TimeoutError) as exc:
                ok, kind, elapsed = False, type(exc).__name__, 0.0
                if connection is not None:
                    connection.close()
                connection = None
                await asyncio.sleep(0.01)  # a refused connection must not turn into a busy loop
            if state.measuring:
                if ok:
                    state.latencies.append(elapsed)
                    if connection is not None and connection.first_at:
                        state.ttfts.append(connection.first_at - started)
                else:
                    state.errors += 1
                    state.error_kinds[kind] += 1
    finally:
        if connection is not None:
            connection.close()


async def measure(
    *,
    scenario: str,
    target: str,
    port: int,
    request: Requests,
    check: Callable[[bytes], bool],
    concurrency: int,
    warmup: float,
    duration: float,
    server_pid: int | None,
    upstream_pid: int,
    pinning: Pinning,
    marker: bytes | None = None,
    lag_probe: bool = False,
    stagger: float = 0.0,
) -> Run:
    """Closed-loop load from `concurrency` keep-alive connections; counts what completes inside the window (and,
    with a `marker`, the time to the first read holding it; with `lag_probe`, a `GET /` every 5 ms on a connection
    of its own measures the server's event-loop delay meanwhile). `stagger`: the connections start spread over that
    many seconds instead of all at once (closed-loop clients started together stay in step: their requests arrive
    in bursts of `concurrency`)."""
    state = LoadState()
    workers = [
        asyncio.ensure_future(
            _worker(port, request[index % len(request)], check, state, marker, stagger * index / concurrency)
        )
        for index in range(concurrency)
    ]
    try:
        await asyncio.sleep(warmup)
        if server_pid is not None:
            reset_peak_rss(server_pid)
        before = _cpu_reading(server_pid, upstream_pid)
        state.measuring = True
        lags: list[float] = []
        probing = (
            asyncio.ensure_future(probe(port, time.perf_counter() + duration, lags))
            if lag_probe and server_pid is not None
            else None
        )
        await asyncio.sleep(duration)
        state.measuring = False
        if probing is not None:
            await probing
        after = _cpu_reading(server_pid, upstream_pid)
        state.stop = True
        _, pending = await asyncio.wait(workers, timeout=REQUEST_TIMEOUT)
    finally:
        state.stop = True
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    if pending:
        print(
            f"  warning: {len(pending)} requests still open {REQUEST_TIMEOUT:.0f} s after the window", file=sys.stderr
        )
    run = _summarise(scenario, target, concurrency, state, before, after, server_pid, pinning)
    if probing is not None and lags:
        lags.sort()
        run.lag_p50_ms = round(percentile(lags, 0.50) * 1000, 3)
        run.lag_p99_ms = round(percentile(lags, 0.99) * 1000, 3)
    return run


def _stagger(args: argparse.Namespace, scenario: Scenario) -> float:
    """--stagger: the connections' first requests spread over one paced stream's length (0: all at once)."""
    return scenario.gap_ms * STREAM_EVENTS / 1000 if args.stagger else 0.0


def _cpu_reading(server_pid: int | None, upstream_pid: int) -> dict[str, Any]:
    return {
        "time": time.perf_counter(),
        "client": time.process_time(),
        "server": tree_cpu_seconds(server_pid) if server_pid is not None else {},
        "upstream": tree_cpu_seconds(upstream_pid),
        "cpus": cpu_busy_seconds(),
    }


def _summarise(
    scenario: str,
    target: str,
    concurrency: int,
    state: LoadState,
    before: dict[str, Any],
    after: dict[str, Any],
    server_pid: int | None,
    pinning: Pinning,
) -> Run:
    seconds = after["time"] - before["time"]
    latencies = sorted(state.latencies)
    ttfts = sorted(state.ttfts)
    done = max(len(latencies), 1)
    server_cpu = cpu_delta(before["server"], after["server"]) if server_pid is not None else None
    upstream_cpu = cpu_delta(before["upstream"], after["upstream"])
    client_cpu = after["client"] - before["client"]
    busy = {cpu: after["cpus"][cpu] - before["cpus"].get(cpu, 0.0) for cpu in after["cpus"]}
    server_foreign = sum(busy.get(c, 0.0) for c in pinning.proxy) - (server_cpu or 0.0)
    client_foreign = sum(busy.get(c, 0.0) for c in pinning.client) - upstream_cpu - client_cpu
    return Run(
        scenario=scenario,
        target=target,
        concurrency=concurrency,
        seconds=round(seconds, 3),
        requests=len(latencies),
        errors=state.errors,
        rps=round(len(latencies) / seconds, 1),
        p50_ms=round(percentile(latencies, 0.50) * 1000, 3),
        p99_ms=round(percentile(latencies, 0.99) * 1000, 3),
        max_ms=round(latencies[-1] * 1000, 3) if latencies else float("nan"),
        server_cpu_us=None if server_cpu is None else round(server_cpu / done * 1e6, 1),
        upstream_cpu_us=round(upstream_cpu / done * 1e6, 1),
        client_cpu_us=round(client_cpu / done * 1e6, 1),
        server_cpu_busy=None if server_cpu is None else round(server_cpu / seconds, 3),
        cpu1_busy=round((upstream_cpu + client_cpu) / seconds, 3),
        server_cpu_foreign=round(max(0.0, server_foreign) / seconds, 3) if pinning.proxy else None,
        client_cpu_foreign=round(max(0.0, client_foreign) / seconds, 3) if pinning.client else None,
        peak_rss_mb=None if server_pid is None else round(tree_rss_kb(server_pid, "VmHWM") / 1024, 1),
        error_kinds=dict(state.error_kinds),
        ttft_p50_ms=round(percentile(ttfts, 0.50) * 1000, 3) if ttfts else None,
        ttft_p99_ms=round(percentile(ttfts, 0.99) * 1000, 3) if ttfts else None,
    )


def parse_cpu_list(text: str) -> set[int]:
    """taskset's CPU list syntax: `0`, `0,2`, `0-3`."""
    cpus: set[int] = set()
    for part in text.split(","):
        start, _, end = part.partition("-")
        cpus.update(range(int(start), int(end or start) + 1))
    return cpus


def set_upstream_gap(upstream_port: int, gap_ms: float) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{upstream_port}/_config", data=json.dumps({"gap_ms": gap_ms}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


# ------------------------------------------------------------------------------------------- reporting


def pair_rows(runs: list[Run], scenario_map: dict[str, Scenario]) -> list[dict[str, Any]]:
    """One row per scenario and concurrency: the proxy run, the direct run and their ratios."""
    direct = {(r.scenario, r.concurrency): r for r in runs if r.target == "direct"}
    floors = {(r.scenario, r.concurrency): r for r in runs if r.target == "floor"}
    rows = []
    for run in (r for r in runs if r.target == "proxy"):
        base = direct.get((run.scenario, run.concurrency))
        floor = floors.get((run.scenario, run.concurrency))
        target = scenario_map[run.scenario].target_cpu_us
        row: dict[str, Any] = {
            "scenario": run.scenario,
            "concurrency": run.concurrency,
            "rps": run.rps,
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "proxy_cpu_us": run.server_cpu_us,
            "proxy_cpu_busy": run.server_cpu_busy,
            "peak_rss_mb": run.peak_rss_mb,
            "errors": run.errors + (base.errors if base else 0) + (floor.errors if floor else 0),
            "target_cpu_us": target,
            "target_met": None if target is None or run.server_cpu_us is None else run.server_cpu_us <= target,
        }
        if base is not None:
            row.update(
                direct_rps=base.rps,
                direct_p50_ms=base.p50_ms,
                direct_p99_ms=base.p99_ms,
                upstream_cpu_us=base.upstream_cpu_us,
                cpu_ratio=_ratio(run.server_cpu_us, base.upstream_cpu_us),
                p50_ratio=_ratio(run.p50_ms, base.p50_ms),
                p99_ratio=_ratio(run.p99_ms, base.p99_ms),
            )
            if run.ttft_p50_ms is not None and base.ttft_p50_ms is not None:
                row.update(
                    ttft_p50_ms=run.ttft_p50_ms,
                    direct_ttft_p50_ms=base.ttft_p50_ms,
                    ttft_added_ms=round(run.ttft_p50_ms - base.ttft_p50_ms, 3),
                )
        if floor is not None and floor.server_cpu_us is not None and run.server_cpu_us is not None:
            row.update(
                floor_rps=floor.rps,
                floor_p50_ms=floor.p50_ms,
                floor_cpu_us=floor.server_cpu_us,
                over_floor_cpu_us=round(run.server_cpu_us - floor.server_cpu_us, 1),
                floor_cpu_ratio=_ratio(run.server_cpu_us, floor.server_cpu_us),
            )
        rows.append(row)
    return rows


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def markdown_table(rows: list[dict[str, Any]]) -> str:
    columns: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("scenario", lambda r: str(r["scenario"])),
        ("conc", lambda r: str(r["concurrency"])),
        ("proxy req/s", lambda r: _num(r["rps"])),
        ("p50 ms", lambda r: _num(r["p50_ms"], ".2f")),
        ("p99 ms", lambda r: _num(r["p99_ms"], ".2f")),
        ("proxy CPU µs/req", lambda r: _num(r["proxy_cpu_us"])),
        ("target", _verdict),
        ("floor CPU µs/req", lambda r: _num(r.get("floor_cpu_us"))),
        ("proxy − floor µs", lambda r: _num(r.get("over_floor_cpu_us"))),
        ("upstream CPU µs/req", lambda r: _num(r.get("upstream_cpu_us"))),
        ("CPU ratio proxy/upstream", lambda r: _num(r.get("cpu_ratio"), ".1f") + "x"),
        ("direct req/s", lambda r: _num(r.get("direct_rps"))),
        ("direct p50 ms", lambda r: _num(r.get("direct_p50_ms"), ".2f")),
        ("p50 ratio", lambda r: _num(r.get("p50_ratio"), ".1f") + "x"),
        ("TTFT added ms (p50)", lambda r: _num(r.get("ttft_added_ms"), ".2f")),
        ("peak RSS MB", lambda r: _num(r["peak_rss_mb"], ".1f")),
        ("errors", lambda r: str(r["errors"])),
    ]
    lines = ["| " + " | ".join(name for name, _ in columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row) for _, cell in columns) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(row: dict[str, Any]) -> str:
    target = row["target_cpu_us"]
    return "" if target is None else f"≤{target:g} {'ok' if row['target_met'] else 'MISSED'}"


def _num(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def rss_breakdown(pid: int) -> list[dict[str, Any]]:
    """RSS of each process of the proxy (a multi-worker proxy's sum counts shared pages once per process)."""
    found = []
    for member in process_tree(pid):
        try:
            name = Path(f"/proc/{member}/comm").read_text().strip()
        except OSError:
            continue
        found.append({"pid": member, "name": name, "rss_mb": round(status_kb(member, "VmRSS") / 1024, 1)})
    return found


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the working tree had changes on top of it."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return result.stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--", "ccproxy"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def machine() -> dict[str, Any]:
    model = ""
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        model = match.group(1) if match else ""
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ------------------------------------------------------------------------------------------- profiling


def profile_proxy(proxy_pid: int, out: Path, seconds: float, client_cpu: int | None, load: Callable[[], None]) -> str:
    """Sample the proxy with py-spy while `load` runs; return the top functions by own and by total samples."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return "py-spy not found: `.venv/bin/pip install py-spy` to profile"
    argv = [py_spy, "record", "--format", "raw", "-o", str(out), "-p", str(proxy_pid)]
    # --subprocesses: with several workers the pid is Sanic's manager; the requests are served by its children.
    argv += ["--rate", "500", "--duration", str(max(1, round(seconds))), "--nonblocking", "--subprocesses"]
    if client_cpu is not None:
        argv = ["taskset", "-c", str(client_cpu), *argv]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # py-spy attaches
        load()
        _, err = recorder.communicate(timeout=seconds + 30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait(5)
    if not out.exists():
        return f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}"
    return summarise_profile(out)


def profile_under_load(
    args: argparse.Namespace,
    scenario: Scenario,
    proxy: Child,
    port: int,
    upstream: Child,
    pinning: Pinning,
    client_cpu: int | None,
) -> str:
    """--profile: py-spy `proxy` while `scenario` runs against it at --profile-concurrency."""

    def load() -> None:
        run_async(
            measure(
                scenario=scenario.name,
                target="proxy",
                port=port,
                request=scenario.proxy_request(port, args.profile_concurrency),
                check=scenario.proxy_check(),
                concurrency=args.profile_concurrency,
                warmup=0.1,
                duration=args.duration,
                server_pid=proxy.pid,
                upstream_pid=upstream.pid,
                pinning=pinning,
            )
        )

    return profile_proxy(proxy.pid, args.profile, args.duration, client_cpu, load)


def summarise_profile(path: Path, top: int = PROFILE_TOP) -> str:
    """Own time by package and by function, and ccproxy's functions by total time, from py-spy's raw output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]  # per function, not per line
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return "the profile holds no samples"
    packages: Counter[str] = Counter()
    for frame, count in own.items():
        packages[_package(frame)] += count
    lines = [f"{samples} samples of the proxy's active threads", "", "own time by package:"]
    lines += [f"  {count / samples:6.1%}  {package}" for package, count in packages.most_common()]
    lines += ["", "own time:"]
    lines += [f"  {count / samples:6.1%}  {frame}" for frame, count in own.most_common(top)]
    # py-spy shows a resumed coroutine's stack from the frame the event loop resumed, so totals are only
    # meaningful below the request handler; ccproxy's own functions are the ones worth reading.
    entry = ("(ccproxy/cli.py)", "(ccproxy/__main__.py)")
    ours = Counter(
        {frame: n for frame, n in total.items() if _package(frame) == "ccproxy" and not frame.endswith(entry)}
    )
    lines += ["", "total time of ccproxy functions (with what they call, C code included):"]
    lines += [f"  {count / samples:6.1%}  {frame}" for frame, count in ours.most_common(top)]
    return "\n".join(lines)


def _package(frame: str) -> str:
    """`sanic`, `aiohttp`, `ccproxy`... from a frame `function (path/to/file.py)`.

    Frames without a file are Sanic's TouchUp-recompiled methods (handle_request, http1_request_header, ...).
    Time inside C code (uvloop, ujson, Cython twins) is counted in the Python frame that called it.
    """
    path = frame.rpartition(" (")[2].rstrip(")")
    if not path.endswith(".py"):
        return "<frozen>" if path.startswith("<frozen") else "sanic (TouchUp-compiled methods)"
    return path.split("/", 1)[0] if "/" in path else path


# ------------------------------------------------------------------------------------------------- main


@dataclass
class Setup:
    proxy: Child
    proxy_port: int
    upstream: Child
    upstream_port: int
    health: dict[str, Any]
    client_cpu: int | None
    pinning: Pinning
    floor: Child | None = None
    floor_port: int = 0


async def run_all(args: argparse.Namespace, setup: Setup, chosen: list[Scenario]) -> dict[str, Any]:
    runs: list[Run] = []
    for scenario in chosen:
        set_upstream_gap(setup.upstream_port, scenario.gap_ms)
        for concurrency in args.concurrency:
            direct_request = scenario.direct_request(setup.upstream_port, concurrency)
            Target = tuple[str, Child | None, int, Requests, Callable[[bytes], bool], bytes | None]
            targets: list[Target] = [
                ("direct", None, setup.upstream_port, direct_request, scenario.direct_check(), scenario.direct_marker())
            ]
            if setup.floor is not None:
                floor_request = scenario.proxy_request(setup.floor_port, concurrency)
                floor = ("floor", setup.floor, setup.floor_port, floor_request, scenario.direct_check())
                targets.append((*floor, scenario.direct_marker()))
            proxy_request = scenario.proxy_request(setup.proxy_port, concurrency)
            proxy = ("proxy", setup.proxy, setup.proxy_port, proxy_request, scenario.proxy_check())
            targets.append((*proxy, scenario.proxy_marker()))
            for target, server, port, request, check, marker in targets:
                run = await measure(
                    scenario=scenario.name,
                    target=target,
                    port=port,
                    request=request,
                    check=check,
                    concurrency=concurrency,
                    warmup=args.warmup,
                    duration=args.duration,
                    server_pid=server.pid if server is not None else None,
                    upstream_pid=setup.upstream.pid,
                    pinning=setup.pinning,
                    marker=marker,
                    lag_probe=args.lag_probe,
                    stagger=_stagger(args, scenario),
                )
                runs.append(run)
                cpu = f"{run.server_cpu_us:,.0f} µs {target} CPU/req, " if run.server_cpu_us is not None else ""
                print(
                    f"  {scenario.name:18s} c={concurrency:<3d} {target:6s} {run.rps:8,.0f} req/s  "
                    f"p50 {run.p50_ms:7.2f} ms  p99 {run.p99_ms:7.2f} ms  {cpu}"
                    f"{run.upstream_cpu_us:,.0f} µs upstream CPU/req  CPU1 {run.cpu1_busy:.0%}"
                    + (f"  TTFT p50 {run.ttft_p50_ms:.2f} ms" if run.ttft_p50_ms is not None else "")
                    + (f"  loop lag p50 {run.lag_p50_ms:.2f} p99 {run.lag_p99_ms:.2f} ms" if run.lag_p50_ms else "")
                    + (f"  ERRORS {run.errors} {run.error_kinds}" if run.errors else "")
                    + _noise_warning(run),
                    flush=True,
                )
    set_upstream_gap(setup.upstream_port, 0.0)
    loop_delay = None if args.no_loop_delay else await measure_loop_delay(setup.proxy_port)
    return {"runs": runs, "loop_delay": loop_delay}


def _noise_warning(run: Run) -> str:
    foreign = max(run.server_cpu_foreign or 0.0, run.client_cpu_foreign or 0.0)
    return f"  NOISE: other processes used {foreign:.0%} of a pinned CPU" if foreign > NOISE_LIMIT else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per run instead of 5 s, shorter warm-up")
    parser.add_argument("--duration", type=float, help="seconds measured per run (default 5, 2 with --quick)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 1, 0.5 with --quick)")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=list(CONCURRENCY))
    parser.add_argument("--scenarios", type=lambda s: s.split(","), help="comma-separated subset of the scenarios")
    parser.add_argument("--workers", type=int, default=1, help="proxy worker processes (WEB_CONCURRENCY)")
    parser.add_argument("--proxy-cpus", default=None, help="taskset CPU list for the proxy (default: the first CPU)")
    parser.add_argument("--pure", action="store_true", help="run the proxy with CCPROXY_ENABLE_CYTHON=false")
    parser.add_argument(
        "--chain",
        type=int,
        default=0,
        help="configure N named backends (default resilience settings) at the upstream and route every model to "
        "the chain of them, instead of the legacy variables; the first target answers",
    )
    parser.add_argument("--no-loop-delay", action="store_true", help="skip the count_tokens loop-delay check")
    parser.add_argument("--no-floor", action="store_true", help="skip the Sanic + aiohttp forwarding floor runs")
    parser.add_argument("--json", type=Path, help="write all results here as JSON")
    parser.add_argument("--profile", type=Path, help="afterwards, py-spy the proxy under load; raw profile here")
    parser.add_argument("--profile-scenario", default="small-json", help="scenario to profile (default small-json)")
    parser.add_argument("--profile-concurrency", type=int, default=64)
    parser.add_argument("--keep-logs", action="store_true", help="keep the scratch directory with process logs")
    parser.add_argument(
        "--ops-compare",
        action="store_true",
        help="instead of the usual runs: the proxy with client keys, metrics, JSON logs (INFO, stderr and a file), a "
        "backend chain of two (the first answers) and a redaction guardrail against the proxy without them, "
        "measured alternately, --ops-rounds times each",
    )
    parser.add_argument(
        "--ops-only",
        action="store_true",
        help="with --ops-compare: the 'on' side without the chain and the guardrail (issue 11's comparison)",
    )
    parser.add_argument(
        "--ab-pythonpath",
        type=Path,
        metavar="DIR",
        help="instead of the usual runs: the proxy importing ccproxy from DIR (a checkout of another commit, its "
        "twins built in place) as the 'off' side against this checkout as 'on', both with the default settings, "
        "measured alternately like --ops-compare",
    )
    parser.add_argument(
        "--ab-ops",
        action="store_true",
        help="with --ab-pythonpath: both sides with client keys, metrics and JSON logs on (the --ops-compare 'on')",
    )
    parser.add_argument(
        "--ops-rounds",
        type=int,
        default=2,
        help="measured runs per side, the two sides alternating (off, on; then on, off; default 2)",
    )
    parser.add_argument(
        "--transport-compare",
        action="store_true",
        help="instead of the usual runs: the proxy on aiohttp against the proxy on the lean transport (backend "
        "default's `transport`), measured alternately like --ops-compare (--ops-rounds each)",
    )
    parser.add_argument(
        "--stagger",
        action="store_true",
        help="start each run's connections spread over one paced stream's length instead of all at once",
    )
    parser.add_argument(
        "--lag-probe",
        action="store_true",
        help="while each proxy run is measured, probe its event-loop delay with GET / every 5 ms",
    )
    parser.add_argument(
        "--paced-gap-ms",
        type=float,
        default=PACED_GAP_MS,
        help=f"pause between the events of stream-100-paced (default {PACED_GAP_MS:g}; the issue's realistic pace: 5)",
    )
    parser.add_argument(
        "--ops-on-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the 'on' proxy, over the defaults (e.g. LOG_LEVEL=WARNING to leave out the usage log)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    return args


# ------------------------------------------------------------------------------------------- --ops-compare


def ops_on_config(upstream_port: int) -> str:
    """plugins.toml of the "on" side: a chain of two backends (the first answers) and a redaction rule with the
    default detectors (vendor keys, tokens, private keys)."""
    return chain_config(2, upstream_port) + "[guardrails.redact]\n"


def ops_settings(log_dir: Path, on: bool, name: str = "ops-on") -> dict[str, str]:
    """The "on" proxy: client keys, metrics, usage, JSON lines at INFO on stderr and in a file (`<name>-log.jsonl`).
    The "off" proxy: the operations built-ins disabled (no observer, no authenticator: the request path before
    issue 11)."""
    if on:
        return {
            "CCPROXY_API_KEYS": OPS_CLIENT_KEY,
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "LOG_FILE_PATH": str(log_dir / f"{name}-log.jsonl"),
            "ERROR_LOG_FILE_PATH": str(log_dir / f"{name}-error.jsonl"),
        }
    config = log_dir / "ops-off.toml"
    config.write_text("[ccproxy]\ndisabled_plugins = [" + ", ".join(f'"{name}"' for name in OPS_BUILTINS) + "]\n")
    return {"CCPROXY_CONFIG": str(config)}


def transport_settings(log_dir: Path, on: bool) -> dict[str, str]:
    """--transport-compare: backend `default` on aiohttp ("off") or on the lean transport ("on"), nothing else."""
    transport = TRANSPORT_SIDES["on" if on else "off"]
    config = log_dir / f"transport-{transport}.toml"
    config.write_text(f'[plugins.openai]\ntransport = "{transport}"\n')
    return {"CCPROXY_CONFIG": str(config)}


async def run_ops_compare(
    args: argparse.Namespace,
    sides: dict[str, tuple[Child, int]],
    upstream: Child,
    upstream_port: int,
    pinning: Pinning,
    chosen: list[Scenario],
) -> list[dict[str, Any]]:
    labels = TRANSPORT_SIDES if args.transport_compare else {"off": "ops off", "on": "ops on"}
    rows = []
    for scenario in chosen:
        set_upstream_gap(upstream_port, scenario.gap_ms)
        for concurrency in args.concurrency:
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            rps: dict[str, list[float]] = {"off": [], "on": []}
            ttft: dict[str, list[float]] = {"off": [], "on": [], "direct": []}
            for round_number in range(args.ops_rounds):
                if scenario.stream:  # the upstream alone, for the time to first token it adds nothing to
                    direct = await measure(
                        scenario=scenario.name,
                        target="direct",
                        port=upstream_port,
                        request=scenario.direct_request(upstream_port, concurrency),
                        check=scenario.direct_check(),
                        concurrency=concurrency,
                        warmup=args.warmup,
                        duration=args.duration,
                        server_pid=None,
                        upstream_pid=upstream.pid,
                        pinning=pinning,
                        marker=scenario.direct_marker(),
                        stagger=_stagger(args, scenario),
                    )
                    if direct.ttft_p50_ms is not None:
                        ttft["direct"].append(direct.ttft_p50_ms)
                # off, on, then on, off: whichever side runs second in a round was measured ~1-3 % dearer in runs
                # of one checkout against itself, so the order alternates and that bias cancels over pairs of rounds.
                order = list(sides.items())
                for side, (child, port) in order if round_number % 2 == 0 else reversed(order):
                    run = await measure(
                        scenario=scenario.name,
                        target=f"ops-{side}",
                        port=port,
                        request=scenario.proxy_request(port, concurrency),
                        check=scenario.proxy_check(),
                        concurrency=concurrency,
                        warmup=args.warmup,
                        duration=args.duration,
                        server_pid=child.pid,
                        upstream_pid=upstream.pid,
                        pinning=pinning,
                        marker=scenario.proxy_marker(),
                        lag_probe=args.lag_probe,
                        stagger=_stagger(args, scenario),
                    )
                    if run.errors:
                        raise RuntimeError(f"{side}: {run.errors} errors {run.error_kinds}; logs: {child.log_tail()}")
                    cpu[side].append(run.server_cpu_us or 0.0)
                    rps[side].append(run.rps)
                    if run.ttft_p50_ms is not None:
                        ttft[side].append(run.ttft_p50_ms)
                    print(
                        f"  {scenario.name:18s} c={concurrency:<3d} {labels[side]:7s} {run.rps:8,.0f} req/s  "
                        f"{run.server_cpu_us:,.0f} µs CPU/req"
                        + (f"  TTFT p50 {run.ttft_p50_ms:.2f} ms" if run.ttft_p50_ms is not None else "")
                        + (f"  loop lag p50 {run.lag_p50_ms:.2f} p99 {run.lag_p99_ms:.2f} ms" if run.lag_p50_ms else "")
                        + f"  proxy CPU {run.server_cpu_busy or 0:.0%} CPU1 {run.cpu1_busy:.0%}"
                        + _noise_warning(run),
                        flush=True,
                    )
            off, on = sum(cpu["off"]) / len(cpu["off"]), sum(cpu["on"]) / len(cpu["on"])
            added = {
                side: round(statistics.median(ttft[side]) - statistics.median(ttft["direct"]), 3)
                for side in ("off", "on")
                if ttft[side] and ttft["direct"]
            }
            rows.append(
                {
                    "labels": labels,
                    "off_ttft_added_ms": added.get("off"),
                    "on_ttft_added_ms": added.get("on"),
                    "direct_ttft_p50_ms": statistics.median(ttft["direct"]) if ttft["direct"] else None,
                    "scenario": scenario.name,
                    "concurrency": concurrency,
                    "off_cpu_us": round(off, 1),
                    "on_cpu_us": round(on, 1),
                    "increase_percent": round((on - off) / off * 100, 1) if off else None,
                    "off_rps": round(sum(rps["off"]) / len(rps["off"]), 1),
                    "on_rps": round(sum(rps["on"]) / len(rps["on"]), 1),
                    "target_cpu_us": scenario.target_cpu_us,
                    "off_runs_cpu_us": cpu["off"],
                    "on_runs_cpu_us": cpu["on"],
                    # Round by round (each round measures both sides back to back): how far one round's verdict
                    # can stray from the mean's.
                    "round_increases_percent": [
                        round((on_run - off_run) / off_run * 100, 1)
                        for off_run, on_run in zip(cpu["off"], cpu["on"], strict=True)
                        if off_run
                    ],
                }
            )
    set_upstream_gap(upstream_port, 0.0)
    return rows


def transport_table(rows: list[dict[str, Any]]) -> str:
    """--transport-compare: both transports' CPU per request, their ratio and the time to first token they add."""
    off, on = TRANSPORT_SIDES["off"], TRANSPORT_SIDES["on"]
    lines = [
        f"| scenario | conc | {off} CPU µs/req | {on} CPU µs/req | {on}/{off} | {off} req/s | {on} req/s "
        f"| TTFT added {off} ms | TTFT added {on} ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio = row["on_cpu_us"] / row["off_cpu_us"] if row["off_cpu_us"] else float("nan")
        lines.append(
            f"| {row['scenario']} | {row['concurrency']} | {row['off_cpu_us']:,.0f} | {row['on_cpu_us']:,.0f} | "
            f"{ratio:.2f} | {row['off_rps']:,.0f} | {row['on_rps']:,.0f} | "
            f"{_num(row['off_ttft_added_ms'], '.2f')} | {_num(row['on_ttft_added_ms'], '.2f')} |"
        )
    return "\n".join(lines)


def ops_table(rows: list[dict[str, Any]]) -> str:
    """The comparison, with issue 11's ≤10 % increase (and the lowest and highest increase of a single round: the
    spread to read the mean with) and issue 12's CPU per request target for the "on" side."""
    lines = [
        "| scenario | conc | off CPU µs/req | on CPU µs/req | increase | rounds | ≤10% | on vs CPU target "
        "| off req/s | on req/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        increase = row["increase_percent"]
        verdict = "ok" if increase is not None and increase <= OPS_TARGET_PERCENT else "MISSED"
        rounds = row.get("round_increases_percent") or []
        spread = f"{min(rounds):+.1f} to {max(rounds):+.1f}%" if rounds else "—"
        target = row.get("target_cpu_us")
        held = "—" if target is None else f"≤{target:g} {'met' if row['on_cpu_us'] <= target else 'missed'}"
        lines.append(
            f"| {row['scenario']} | {row['concurrency']} | {row['off_cpu_us']:,.0f} | {row['on_cpu_us']:,.0f} | "
            f"{increase:+.1f}% | {spread} | {verdict} | {held} | {row['off_rps']:,.0f} | {row['on_rps']:,.0f} |"
        )
    return "\n".join(lines)


def supervised(log_dir: Path, keep_logs: bool, body: Callable[[list[Child]], int]) -> int:
    """Run `body` with a list it appends the processes it starts to; stop them all however it ends, and remove the
    scratch directory unless it failed or --keep-logs."""
    children: list[Child] = []
    ok = False
    try:
        code = body(children)
        ok = True
        return code
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted; stopping the proxy and the upstream", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"load.py: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            child.stop()
        if ok and not keep_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            print(f"process logs kept in {log_dir}", file=sys.stderr)


def ops_compare_main(
    args: argparse.Namespace,
    chosen: list[Scenario],
    log_dir: Path,
    proxy_cpus: str | None,
    client_cpu: int | None,
    pinning: Pinning,
) -> int:
    """--ops-compare: both proxies on the proxy CPU (each idle while the other is measured), the same load."""

    def body(children: list[Child]) -> int:
        upstream, upstream_port = start_upstream(log_dir, client_cpu)
        children.append(upstream)
        sides: dict[str, tuple[Child, int]] = {}
        for side in ("off", "on"):
            config = None
            if args.ab_pythonpath:  # the same settings on both sides, another checkout's code on "off"
                env = {"PYTHONPATH": str(args.ab_pythonpath.resolve())} if side == "off" else {}
                if args.ab_ops:  # both with keys, metrics and JSON logs on
                    env.update(ops_settings(log_dir, True, f"ab-{side}"))
            elif args.transport_compare:
                env = transport_settings(log_dir, side == "on")
            else:
                env = ops_settings(log_dir, side == "on")
                if side == "on" and not args.ops_only:
                    config = ops_on_config(upstream_port)
            if side == "on":
                env.update(setting.split("=", 1) for setting in args.ops_on_env)
            if args.pure:
                env["CCPROXY_ENABLE_CYTHON"] = "false"
            child, port, health = start_proxy(
                log_dir,
                upstream_port,
                workers=args.workers,
                cpus=proxy_cpus,
                extra_env=env,
                config=config,
                name=f"proxy-ops-{side}",
            )
            print(f"{side}: pid {child.pid}, {health.get('core')} core, ccproxy from {env.get('PYTHONPATH', 'here')}")
            children.append(child)
            sides[side] = (child, port)
        time.sleep(0.5)
        print(f"ops comparison: {args.duration:g} s per run after {args.warmup:g} s warm-up, {args.ops_rounds} rounds")
        rows = run_async(run_ops_compare(args, sides, upstream, upstream_port, pinning, chosen))
        print()
        print(transport_table(rows) if args.transport_compare else ops_table(rows))
        if args.profile:
            on_child, on_port = sides["on"]
            scenario = next(s for s in chosen if s.name == args.profile_scenario)
            print(profile_under_load(args, scenario, on_child, on_port, upstream, pinning, client_cpu))
        if not args.transport_compare:  # the file and its rotated backups
            files = sorted(log_dir.glob(("ab-on" if args.ab_ops else "ops-on") + "-log.jsonl*"))
            records = sum(file.read_text().count('"logger":"ccproxy.usage"') for file in files)
            print(f"\nthe on proxy wrote {records:,} usage records to its log files ({len(files)}, rotated by size)")
        if args.json:
            report = {"machine": machine(), "git": git_state(), "workers": args.workers, "rows": rows}
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return 0

    return supervised(log_dir, args.keep_logs, body)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the same finally blocks as Ctrl-C


def production_idle_rss(log_dir: Path, upstream_port: int, workers: int, cpus: str | None) -> float:
    """Idle RSS (MB) of a proxy started like the measured one but unable to import TEST_ONLY_MODULES."""
    child, _, _ = start_proxy(
        log_dir, upstream_port, workers=workers, cpus=cpus, name="proxy-installed", blocked_modules=TEST_ONLY_MODULES
    )
    try:
        time.sleep(0.5)
        return round(tree_rss_kb(child.pid) / 1024, 1)
    finally:
        child.stop()


def chain_config(length: int, upstream_port: int) -> str:
    """plugins.toml for `--chain N`: backends b1..bN at the upstream, every model routed to b1 -> ... -> bN."""
    lines = []
    for index in range(1, length + 1):
        lines += [f"[backends.b{index}]", 'provider = "openai"', f'base_url = "http://127.0.0.1:{upstream_port}/v1"']
        lines.append(f'api_key = "{API_KEY}"')
    targets = ", ".join(f'"b{index}:{BIG_MODEL}"' for index in range(1, length + 1))
    return "\n".join([*lines, "[routes]", f'"*" = [{targets}]']) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    available = scenarios(args.paced_gap_ms)
    names = args.scenarios or list(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {list(available)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Explicitly: a shell starting us in the background leaves SIGINT ignored, and Ctrl-C must still tear down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("warning: fewer than 2 CPUs: the proxy, upstream and client share one; figures mix", file=sys.stderr)
    proxy_cpus = args.proxy_cpus or (str(cpus[0]) if len(cpus) >= 2 else None)
    client_cpu = cpus[1] if len(cpus) >= 2 else None
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    pinning = Pinning(
        proxy=frozenset(parse_cpu_list(proxy_cpus)) if proxy_cpus else frozenset(),
        client=frozenset({client_cpu}) if client_cpu is not None else frozenset(),
    )
    log_dir = scratch_dir()
    if args.ops_compare or args.transport_compare or args.ab_pythonpath:
        return ops_compare_main(args, [available[name] for name in names], log_dir, proxy_cpus, client_cpu, pinning)

    def body(children: list[Child]) -> int:
        upstream, upstream_port = start_upstream(log_dir, client_cpu)
        children.append(upstream)
        extra_env = {"CCPROXY_ENABLE_CYTHON": "false"} if args.pure else None
        config = chain_config(args.chain, upstream_port) if args.chain else None
        proxy, proxy_port, health = start_proxy(
            log_dir, upstream_port, workers=args.workers, cpus=proxy_cpus, extra_env=extra_env, config=config
        )
        children.append(proxy)
        setup = Setup(proxy, proxy_port, upstream, upstream_port, health, client_cpu, pinning)
        if not args.no_floor:
            setup.floor, setup.floor_port = start_floor(log_dir, upstream_port, cpus=proxy_cpus)
            children.append(setup.floor)
        time.sleep(0.5)
        idle_rss_mb = round(tree_rss_kb(proxy.pid) / 1024, 1)
        idle_processes = rss_breakdown(proxy.pid)
        installed_rss_mb = production_idle_rss(log_dir, upstream_port, args.workers, proxy_cpus)
        print(
            f"proxy pid {proxy.pid} ({args.workers} worker(s), {health.get('core')} core) on CPU {proxy_cpus}; "
            f"upstream and load generator on CPU {client_cpu}; idle RSS {idle_rss_mb} MB; "
            f"{args.duration:g} s per run after {args.warmup:g} s warm-up",
            flush=True,
        )
        results = run_async(run_all(args, setup, [available[name] for name in names]))
        runs: list[Run] = results["runs"]
        rows = pair_rows(runs, available)
        report = {
            "machine": machine(),
            "config": {
                "workers": args.workers,
                "chain": args.chain,
                "core": health.get("core"),
                "proxy_cpus": proxy_cpus,
                "client_cpu": client_cpu,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "paced_gap_ms": PACED_GAP_MS,
                "git": git_state(),
            },
            "idle_rss_mb": idle_rss_mb,
            "idle_rss_installed_mb": installed_rss_mb,
            "idle_rss_processes": idle_processes,
            "idle_rss_target_mb": IDLE_RSS_TARGET_MB,
            "rows": rows,
            "runs": [asdict(run) for run in runs],
            "loop_delay": results["loop_delay"],
        }
        print()
        print(markdown_table(rows))
        print()
        verdict = "ok" if installed_rss_mb <= IDLE_RSS_TARGET_MB else "MISSED"
        print(
            f"idle RSS after start-up: {installed_rss_mb} MB as installed for production, without the test-only "
            f"{', '.join(TEST_ONLY_MODULES)} (target ≤ {IDLE_RSS_TARGET_MB:g} MB {verdict}); {idle_rss_mb} MB in "
            "this venv, where Sanic imports them"
        )
        if len(idle_processes) > 1:
            print("  per process: " + ", ".join(f"{p['name']} {p['pid']}: {p['rss_mb']} MB" for p in idle_processes))
        if results["loop_delay"]:
            print(describe(results["loop_delay"]))
        if args.profile:
            profile_scenario = available[args.profile_scenario]
            summary = profile_under_load(args, profile_scenario, proxy, proxy_port, upstream, pinning, client_cpu)
            report["profile"] = {"scenario": profile_scenario.name, "path": str(args.profile), "summary": summary}
            print(f"\nprofile of the proxy under {profile_scenario.name}, c={args.profile_concurrency}:\n{summary}")
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
            print(f"\nresults written to {args.json}")
        return 0

    return supervised(log_dir, args.keep_logs, body)


if __name__ == "__main__":
    sys.exit(main())
