"""How the proxy's workers share client connections and requests: one proxy with N workers, C keep-alive clients.

    .venv/bin/python benchmarks/worker_balance.py [--workers 2] [--concurrency 8,64] [--seconds 3]

Starts benchmarks/fast_upstream.py and `ccproxy serve` with `--workers` workers (Sanic's processes share one listening
socket: each worker accepts what it can), runs the small-json load from load.py with each concurrency, and reports
which worker owns each established client connection (from /proc: a worker's socket inodes against /proc/net/tcp)
and each worker's share of the CPU time. Two workers can only serve 2x one worker's requests if both get about half
of the connections and of the work; this shows whether they do, independently of how busy the machine is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

from bench_harness import Connection, process_tree, run_async, scratch_dir, start_proxy, start_upstream
from load import scenarios

TCP_ESTABLISHED = "01"


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def established_inodes(port: int) -> set[str]:
    """Inodes of established TCP sockets whose local port is `port` (the server's side of client connections)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == TCP_ESTABLISHED:
                found.add(fields[9])
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(port: int, request: bytes, concurrency: int, seconds: float) -> int:
    """Closed-loop keep-alive load; returns requests completed."""
    done = 0
    stop = time.perf_counter() + seconds

    async def lane() -> None:
        nonlocal done
        connection = await Connection.open(port)
        try:
            while time.perf_counter() < stop:
                status, _ = await connection.send(request)
                done += status == 200
        finally:
            connection.close()

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[8, 64])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    log_dir = scratch_dir()
    upstream, upstream_port = start_upstream(log_dir, None)
    proxy, port, _ = start_proxy(log_dir, upstream_port, workers=args.workers, cpus=None)
    try:
        time.sleep(1.0)
        # With one worker Sanic serves in the main process; with several, in child processes (which hold sockets).
        children = [pid for pid in process_tree(proxy.pid) if pid != proxy.pid and socket_inodes(pid)]
        workers = children if args.workers > 1 else [proxy.pid]
        request = scenarios()["small-json"].proxy_request(port)[0][0]  # the one request of its one connection
        for concurrency in args.concurrency:
            before = {pid: cpu_seconds(pid) for pid in workers}
            done, owners = run_async(_with_census(port, request, concurrency, args.seconds, workers))
            used = {pid: cpu_seconds(pid) - before[pid] for pid in workers}
            total = sum(used.values()) or 1.0
            shares = ", ".join(
                f"pid {pid}: {owners.get(pid, 0)} connections, {used[pid] / total:.0%} of the CPU"
                for pid in workers
                if owners.get(pid, 0) or used[pid] > 0.01 * total or args.workers == 1
            )
            print(f"c={concurrency}: {done / args.seconds:,.0f} req/s; {shares}", flush=True)
    finally:
        proxy.stop()
        upstream.stop()
    return 0


async def _with_census(
    port: int, request: bytes, concurrency: int, seconds: float, workers: list[int]
) -> tuple[int, Counter[int]]:
    """Run the load and, half-way through, count which worker holds each established client connection."""
    load = asyncio.ensure_future(drive(port, request, concurrency, seconds))
    await asyncio.sleep(seconds / 2)
    server_side = established_inodes(port)
    owners: Counter[int] = Counter()
    for pid in workers:
        owners[pid] = len(socket_inodes(pid) & server_side)
    return await load, owners


if __name__ == "__main__":
    sys.exit(main())
