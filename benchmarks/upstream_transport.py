"""The upstream call alone, aiohttp vs the lean transport, in one process: CPU per call and a cProfile of each.

    .venv/bin/python benchmarks/upstream_transport.py [--rounds 7] [--calls 2000] [--profile] [--baseline REV]

benchmarks/fast_upstream.py answers on the second CPU; this process (pinned to the first) sends with
`AiohttpUpstream` and `LeanUpstream` alternately, 8 calls in flight, each call `send` + reading the whole body the way
the pipeline does (`read()` for JSON, `iter_bytes()` for the stream). The figure is this process's CPU time
(`time.process_time`) per call, best and median of `--rounds` interleaved rounds: scheduling noise from other
processes on a shared machine does not enter CPU time, and interleaving spreads the cache and frequency noise over
both sides alike. Scenarios: the small request and its completion; the 78 KB Claude Code request (converted) and the
same completion; the small request answered by the 101-event stream (100 chunks + [DONE]). Each transport has the
backend default's `max_connections` (`--max-connections`, 100), so a request takes and frees a connection slot as it
does in the proxy. `--baseline REV` adds the LeanUpstream of git revision REV (ccproxy/upstream/lean.py as it was
there, loaded beside the current one) as a third side, `lean@REV`: a change to the lean client measured before and
after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any

from bench_harness import API_KEY, REPO_ROOT, run_async, scratch_dir, start_upstream
from bench_payloads import claude_code_request, dumps, request_plan, small_request

from ccproxy.core.request import convert_request
from ccproxy.upstream import AiohttpUpstream, LeanUpstream, Upstream, UpstreamRequest
from ccproxy.upstream.errors import no_redaction

IN_FLIGHT = 8
Transports = dict[str, type[AiohttpUpstream] | type[LeanUpstream]]
TRANSPORTS: Transports = {"aiohttp": AiohttpUpstream, "lean": LeanUpstream}
HEADERS = {"content-type": "application/json", "accept": "application/json", "authorization": f"Bearer {API_KEY}"}


def bodies() -> dict[str, tuple[bytes, bool]]:
    def openai(anthropic: dict[str, Any], stream: bool) -> bytes:
        return dumps(convert_request(anthropic, request_plan(stream=stream))).encode()

    return {
        "small-json": (openai(small_request(), False), False),
        "claude-code-json": (openai(claude_code_request(stream=False), False), False),
        "stream-100": (openai(small_request(stream=True), True), True),
    }


async def one_call(upstream: Upstream, body: bytes, stream: bool) -> int:
    request = UpstreamRequest("/chat/completions", body, stream, time.monotonic() + 30)
    response = await upstream.send(request)
    if not stream:
        return len(await response.read())
    size = 0
    async for data in response.iter_bytes():
        size += len(data)
    return size


async def batch(upstream: Upstream, body: bytes, stream: bool, calls: int) -> float:
    """CPU seconds per call for `calls` calls, IN_FLIGHT at a time."""
    left = [calls]

    async def lane() -> None:
        while left[0] > 0:
            left[0] -= 1
            assert await one_call(upstream, body, stream) > 0

    gc.collect()  # the garbage of the side measured before is not collected on this one's time
    started = time.process_time()
    await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
    return (time.process_time() - started) / calls


def baseline_lean(revision: str) -> type[LeanUpstream]:
    """LeanUpstream as it was at git `revision`, loaded as a module of its own beside the current one."""
    source = subprocess.run(
        ["git", "show", f"{revision}:ccproxy/upstream/lean.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("lean_baseline")
    module.__file__ = f"ccproxy/upstream/lean.py@{revision}"
    sys.modules[module.__name__] = module  # its annotations and dataclasses look the module up by name
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our own file, at another commit
    kind: type[LeanUpstream] = module.LeanUpstream
    return kind


async def measure(
    port: int, rounds: int, calls: int, profile: bool, transports: Transports, max_connections: int
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/v1"
    upstreams: dict[str, Upstream] = {
        name: kind(
            url, HEADERS, connect_timeout=5, read_timeout=30, redact=no_redaction, limit_connections=max_connections
        )
        for name, kind in transports.items()
    }
    for upstream in upstreams.values():
        await upstream.open()
    results: dict[str, Any] = {}
    try:
        for scenario, (body, stream) in bodies().items():
            per_call: dict[str, list[float]] = {name: [] for name in upstreams}
            for upstream in upstreams.values():  # warm-up: connections made, code paths hot
                await batch(upstream, body, stream, calls // 4)
            for _ in range(rounds):
                for name, upstream in upstreams.items():
                    per_call[name].append(await batch(upstream, body, stream, calls))
            row = {name: summary(values) for name, values in per_call.items()}
            results[scenario] = row
            print(line(scenario, row), flush=True)
        if profile:
            for scenario, (body, stream) in bodies().items():
                for name, upstream in upstreams.items():
                    print(f"\n--- cProfile: {name}, {scenario}, {calls} calls ---")
                    print(await profiled(functools.partial(batch, upstream, body, stream, calls)))
    finally:
        for upstream in upstreams.values():
            await upstream.aclose()
    return results


def summary(values: list[float]) -> dict[str, float]:
    return {"best_us": round(min(values) * 1e6, 1), "median_us": round(statistics.median(values) * 1e6, 1)}


def line(scenario: str, row: dict[str, dict[str, float]]) -> str:
    sides = "   ".join(f"{name} {side['best_us']:7.1f} / {side['median_us']:7.1f} µs" for name, side in row.items())
    lean = row["lean"]["median_us"]
    ratios = "   ".join(f"lean/{name} {lean / side['median_us']:.2f}" for name, side in row.items() if name != "lean")
    return f"{scenario:18s} {sides}   (medians) {ratios}"


async def profiled(run: Callable[[], Awaitable[float]]) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    await run()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    return "\n".join(text for text in out.getvalue().splitlines() if text.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="calls per round and transport")
    parser.add_argument("--profile", action="store_true", help="afterwards, cProfile each transport and scenario")
    parser.add_argument("--max-connections", type=int, default=100, help="each transport's connection slots")
    parser.add_argument("--baseline", metavar="REV", help="also measure LeanUpstream as of this git revision")
    args = parser.parse_args(argv)
    transports = dict(TRANSPORTS)
    if args.baseline:
        transports[f"lean@{args.baseline}"] = baseline_lean(args.baseline)
    cpus = sorted(os.sched_getaffinity(0))
    log_dir = scratch_dir()
    upstream, port = start_upstream(log_dir, cpus[1] if len(cpus) > 1 else None)
    try:
        os.sched_setaffinity(0, {cpus[0]})
        print(f"CPU µs per call (best / median of {args.rounds} rounds of {args.calls}, {IN_FLIGHT} in flight)")
        run_async(measure(port, args.rounds, args.calls, args.profile, transports, args.max_connections))
    finally:
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
