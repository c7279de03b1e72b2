"""What Redis costs per operation: cache get/set, limiter acquire, breaker admit+record, a whole request's state
work through the upstream stack, a client key's limits and the shared usage sums (GET /v1/usage) — each next to the
in-process equivalent (the workers' files, for the usage sums).

Run as `.venv/bin/python benchmarks/redis_roundtrip.py [--ops N] [--json FILE]`: it starts its own redis-server on a
free port (no persistence) and drives it from this process on uvloop, one operation at a time (latency: what one
request waits) and 32 at once (throughput), and reads the CPU time both processes used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench_harness import Child, cpu_seconds, free_port, run_async, scratch_dir, spawn, wait_until

from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.events import RequestRecord
from ccproxy.interfaces import CacheBackend
from ccproxy.quota import LimitStore, MemoryLimitStore
from ccproxy.upstream import (
    CircuitBreakerUpstream,
    InMemoryBreakerState,
    InMemoryLimiterState,
    RateLimitedUpstream,
    UpstreamRequest,
    UpstreamStates,
)
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from ccproxy.usage import SharedUsage, UsageTotals, WorkerFiles
from ccproxy_redis import RedisCacheBackend, RedisOptions

CONCURRENCY = 32
WARM_UP = 200
# A cached count_tokens answer is a few bytes; a cached upstream answer a few KB.
VALUE = {"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "x" * 2000}}]}
Operation = Callable[[int], Awaitable[Any]]
# A busy process's second: requests of USAGE_ROWS distinct key and model pairs, each row changed since the last publish.
USAGE_ROWS = 20


@dataclass
class Figures:
    name: str
    store: str
    p50_us: float
    p99_us: float
    client_cpu_us: float  # this process's CPU per operation (serial run)
    server_cpu_us: float  # redis-server's CPU per operation (serial run)
    concurrent_ops_s: float  # operations per second with CONCURRENCY in flight


def start_redis() -> tuple[Child, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (./run-tests.sh --install-only installs it)")
    port, workdir = free_port(), scratch_dir()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    child = spawn("redis-server", [*argv, "--dir", str(workdir)], env={}, cwd=workdir, log_dir=workdir)
    wait_until(child, lambda: "Ready to accept connections" in child.log_text(), "accept connections")
    return child, port


async def measure(name: str, store: str, operation: Operation, ops: int, server_pid: int | None) -> Figures:
    for index in range(WARM_UP):
        await operation(index)
    latencies = []
    client_before, server_before = time.process_time(), cpu_seconds(server_pid) if server_pid else 0.0
    for index in range(ops):
        started = time.perf_counter()
        await operation(index)
        latencies.append(time.perf_counter() - started)
    client_cpu = time.process_time() - client_before
    server_cpu = (cpu_seconds(server_pid) - server_before) if server_pid else 0.0
    latencies.sort()

    async def worker(offset: int) -> None:
        for index in range(offset, ops, CONCURRENCY):
            await operation(index)

    started = time.perf_counter()
    await asyncio.gather(*(worker(offset) for offset in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return Figures(
        name=name,
        store=store,
        p50_us=statistics.median(latencies) * 1e6,
        p99_us=latencies[int(0.99 * (len(latencies) - 1))] * 1e6,
        client_cpu_us=client_cpu / ops * 1e6,
        server_cpu_us=server_cpu / ops * 1e6,
        concurrent_ops_s=ops / elapsed,
    )


def request() -> UpstreamRequest:
    return UpstreamRequest("/chat/completions", b"{}", False, time.monotonic() + 60.0)


def stack(states: UpstreamStates) -> CircuitBreakerUpstream:
    """Breaker and limiter around an upstream that answers at once: what the shared state adds to one request."""
    fake = FakeUpstream(lambda _: FakeResponse(status=200, body=b"{}"))
    limited = RateLimitedUpstream(fake, name="bench", rpm=10**9, tpm=0, limit_wait=0.0, state=states.limiter)
    return CircuitBreakerUpstream(limited, name="bench", failures=5, cooldown=60.0, state=states.breaker)


def operations(
    cache: CacheBackend, states: UpstreamStates, limits: LimitStore, usage: SharedUsage
) -> dict[str, Operation]:
    upstream = stack(states)
    totals = UsageTotals()
    records = [
        RequestRecord("req_bench", f"key_{row % 5:08x}", upstream_model=f"model-{row}", input_tokens=1000)
        for row in range(USAGE_ROWS)
    ]
    publishing = asyncio.Lock()  # one publish at a time per process, as the usage plugin does

    async def cache_get(index: int) -> None:
        await cache.get(f"k{index % 1000}")

    async def cache_set(index: int) -> None:
        await cache.set(f"k{index % 1000}", VALUE)

    async def acquire(index: int) -> None:
        await states.limiter.acquire("bench", time.monotonic(), 100, 10**9, 0)

    async def admit_record(index: int) -> None:
        admission = await states.breaker.admit("bench-breaker", time.monotonic(), 60.0)
        await states.breaker.record(
            "bench-breaker", failed=False, trial=admission.trial, now=time.monotonic(), threshold=5
        )

    async def whole_request(index: int) -> None:
        response = await upstream.send(request())
        await response.aclose()

    async def key_rpm(index: int) -> None:
        await limits.take("rpm:key_bench", 10**9, time.monotonic())

    async def key_all_limits(index: int) -> None:
        # What KeyLimits asks for a key with tpm, a budget and rpm before its request, and what it records after
        # it (in the background; flushed here so that its cost is counted).
        now = time.monotonic()
        budget = "budget:key_bench:2026-11-30"
        await limits.check(now, tpm=("tpm:key_bench", 10**12), budget=(budget, 10.0**9), rpm=("rpm:key_bench", 10**9))
        limits.record(now, tokens=("tpm:key_bench", 1_000.0), cost=(budget, 0.001, time.time() + 3600))
        await limits.flush()

    async def usage_publish(index: int) -> None:
        totals.add_all(records)
        async with publishing:
            await usage.publish(totals)

    async def usage_read(index: int) -> None:
        await usage.read(totals)

    return {
        "cache get (hit, 2 KB value)": cache_get,
        "cache set (2 KB value)": cache_set,
        "limiter acquire": acquire,
        "breaker admit + record": admit_record,
        "request through breaker + limiter (2 round trips)": whole_request,
        "client key rpm (take)": key_rpm,
        "client key with rpm, tpm and budget (check + record)": key_all_limits,
        f"usage publish ({USAGE_ROWS} rows changed)": usage_publish,
        "usage read (GET /v1/usage, 93 days)": usage_read,
    }


async def run(ops: int) -> list[Figures]:
    server, port = start_redis()
    results: list[Figures] = []
    try:
        memory = MemoryCacheBackend()
        redis_cache = RedisCacheBackend(RedisOptions(url=f"redis://127.0.0.1:{port}/0", key_prefix="bench:"))
        await redis_cache.open()
        in_memory = UpstreamStates(InMemoryBreakerState(), InMemoryLimiterState())
        for index in range(1000):  # the gets hit
            await memory.set(f"k{index}", VALUE)
            await redis_cache.set(f"k{index}", VALUE)
        try:
            # The in-process side of the usage sums: a server's workers' files, another worker's beside this one's.
            files = str(scratch_dir())
            other_worker = UsageTotals()
            other_worker.add_all([RequestRecord("req_other", "key_other", upstream_model="m")] * USAGE_ROWS)
            await WorkerFiles(files, pid=1).publish(other_worker)
            redis_usage = redis_cache.shared_usage_store()
            for store, cache, states, limits, usage, pid in (
                ("memory", memory, in_memory, MemoryLimitStore(), WorkerFiles(files), None),
                (
                    "redis",
                    redis_cache,
                    redis_cache.shared_states(),
                    redis_cache.shared_limit_store(),
                    redis_usage,
                    server.pid,
                ),
            ):
                for name, operation in operations(cache, states, limits, usage).items():
                    results.append(await measure(name, store, operation, ops, pid))
                    print(format_row(results[-1]), flush=True)
            assert redis_cache.link.up and redis_cache.link.failed == 0, "Redis failed during the run"
        finally:
            await redis_cache.close()
    finally:
        server.stop()
    return results


def format_row(figures: Figures) -> str:
    return (
        f"{figures.name:<52} {figures.store:<7} p50 {figures.p50_us:8.1f} µs  p99 {figures.p99_us:8.1f} µs  "
        f"client CPU {figures.client_cpu_us:6.1f} µs  redis CPU {figures.server_cpu_us:6.1f} µs  "
        f"{figures.concurrent_ops_s:10.0f} ops/s at {CONCURRENCY}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=20_000, help="operations per measurement (default 20000)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    results = run_async(run(args.ops))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(figures) for figures in results], out, indent=2)


if __name__ == "__main__":
    main()
