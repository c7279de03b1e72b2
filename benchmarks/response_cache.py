"""What a response-cache hit costs next to a miss: the proxy's CPU per request, non-stream and stream, in one run.

Run as `.venv/bin/python benchmarks/response_cache.py [--requests N] [--json FILE]`. It starts the fast upstream
(benchmarks/fast_upstream.py) and two proxy processes pinned to one CPU, one with RESPONSE_CACHE=on (memory backend)
and one without, and sends N requests one after another on one keep-alive connection:
- miss: every request a different prompt (each converted, sent upstream, translated, and stored);
- hit: one prompt again and again (each answered from the cache: converted afresh, nothing sent upstream);
- off: every request a different prompt through the proxy without the response cache (what a miss adds to it).
The proxy's CPU time (its /proc schedstat) is read around each run; the figures are µs of CPU per request and
their ratios.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_harness import Connection, cpu_seconds, http_request, run_async, scratch_dir, start_proxy, start_upstream
from bench_payloads import dumps, small_request

WARM_UP = 100
HEADERS = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}


@dataclass
class Figures:
    kind: str  # "non-stream" or "stream"
    run: str  # "hit", "miss" or "off"
    cpu_us: float  # the proxy's CPU per request
    wall_us: float  # per request, one at a time


def body(stream: bool, prompt: str) -> bytes:
    request = small_request(stream=stream)
    request["messages"] = [{"role": "user", "content": prompt}]
    return dumps(request).encode()


async def drive(port: int, pid: int, requests: list[bytes], expect: bytes) -> tuple[float, float]:
    """(CPU µs, wall µs) per request of `requests`, sent one at a time on one connection."""
    connection = await Connection.open(port)
    try:
        before, started = cpu_seconds(pid), time.perf_counter()
        for request in requests:
            status, answer = await connection.send(request)
            if status != 200 or expect not in answer:
                raise RuntimeError(f"unexpected answer {status}: {answer[:300]!r}")
        wall, cpu = time.perf_counter() - started, cpu_seconds(pid) - before
    finally:
        connection.close()
    return cpu / len(requests) * 1e6, wall / len(requests) * 1e6


def requests_for(port: int, stream: bool, prompts: list[str]) -> list[bytes]:
    return [http_request("POST", "/v1/messages", port, body(stream, prompt), HEADERS) for prompt in prompts]


async def measure(cached: tuple[int, int], plain: tuple[int, int], count: int) -> list[Figures]:
    figures: list[Figures] = []
    for stream in (False, True):
        kind = "stream" if stream else "non-stream"
        expect = b"event: message_stop" if stream else b'"stop_reason"'
        port, pid = cached
        await drive(port, pid, requests_for(port, stream, [f"warm {kind} {n}" for n in range(WARM_UP)]), expect)
        hits = requests_for(port, stream, ["the same question"] * (count + 1))
        await drive(port, pid, hits[:1], expect)  # stored: every later one is a hit
        runs = {
            "miss": (cached, [f"miss {kind} {n}" for n in range(count)]),
            "off": (plain, [f"off {kind} {n}" for n in range(count)]),
        }
        cpu, wall = await drive(port, pid, hits[1:], expect)
        figures.append(Figures(kind, "hit", cpu, wall))
        for run, ((run_port, run_pid), prompts) in runs.items():
            if run == "off":
                warm = [f"warm off {kind} {n}" for n in range(WARM_UP)]
                await drive(run_port, run_pid, requests_for(run_port, stream, warm), expect)
            cpu, wall = await drive(run_port, run_pid, requests_for(run_port, stream, prompts), expect)
            figures.append(Figures(kind, run, cpu, wall))
    return figures


def table(figures: list[Figures]) -> str:
    rows = [
        "| request | hit CPU µs | miss CPU µs | cache off CPU µs | hit / miss | miss / off |",
        "| --- |" + " ---: |" * 5,
    ]
    for kind in ("non-stream", "stream"):
        by_run = {f.run: f for f in figures if f.kind == kind}
        hit, miss, off = by_run["hit"].cpu_us, by_run["miss"].cpu_us, by_run["off"].cpu_us
        rows.append(f"| {kind} | {hit:.0f} | {miss:.0f} | {off:.0f} | {hit / miss:.2f} | {miss / off:.2f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per run (default 2000)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    log_dir = scratch_dir()
    upstream, upstream_port = start_upstream(log_dir, cpu=1)
    cached_proxy, cached_port, health = start_proxy(
        log_dir, upstream_port, extra_env={"RESPONSE_CACHE": "on"}, name="proxy-cached"
    )
    plain_proxy, plain_port, _ = start_proxy(log_dir, upstream_port, name="proxy-plain")
    try:
        figures = run_async(measure((cached_port, cached_proxy.pid), (plain_port, plain_proxy.pid), args.requests))
    finally:
        for child in (cached_proxy, plain_proxy, upstream):
            child.stop()
    print(f"core: {health.get('core')}, {args.requests} requests per run, proxy pinned to CPU 0")
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))


if __name__ == "__main__":
    main()
