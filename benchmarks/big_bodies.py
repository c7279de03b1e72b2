"""What big request bodies leave behind: the proxy's RSS before, at its peak and a few seconds after N big
count_tokens bodies sent at once (docs/operations.md, "Memory per request").

Two shapes of body: `many` (120,000 short messages: many small objects, the case glibc's heaps keep) and `one` (one
35 MB text: a few big blocks). The proxy runs alone (no upstream is called for count_tokens).

    .venv/bin/python benchmarks/big_bodies.py [--shape many|one] [--bodies 16] [--settle 3] [--pure]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time

import aiohttp
from bench_harness import reset_peak_rss, scratch_dir, start_proxy, tree_rss_kb

SHAPES = ("many", "one")


def big_body(shape: str) -> bytes:
    """A count_tokens body of ~33-35 MB."""
    if shape == "many":
        messages = [
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": [{"type": "text", "text": f"line {i} " + "word " * 40}],
            }
            for i in range(120_000)
        ]
    else:
        messages = [{"role": "user", "content": "word " * 7_000_000}]
    return json.dumps({"model": "claude-sonnet-4-5", "messages": messages}).encode()


def count_tokens(port: int, body: bytes) -> None:
    """One body, on its own connection (for the idle figure)."""
    asyncio.run(send_all(port, body, 1))


async def send_all(port: int, body: bytes, count: int) -> None:
    """`count` bodies at once from one aiohttp client (a connection each)."""
    url = f"http://127.0.0.1:{port}/v1/messages/count_tokens"
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}

    async def one(session: aiohttp.ClientSession) -> None:
        async with session.post(url, data=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                raise RuntimeError(f"count_tokens answered {response.status}: {answer[:200]!r}")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.gather(*(one(session) for _ in range(count)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shape", choices=SHAPES, default="many")
    parser.add_argument("--bodies", type=int, default=16, help="bodies sent at once (default 16)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the last answer (default 3)")
    parser.add_argument("--pure", action="store_true", help="the pure-Python core (CCPROXY_ENABLE_CYTHON=false)")
    args = parser.parse_args()
    scratch = scratch_dir()
    env = {"MAX_REQUEST_BODY_BYTES": str(100 * 1024 * 1024)}
    if args.pure:
        env["CCPROXY_ENABLE_CYTHON"] = "false"
    child, port, health = start_proxy(scratch, 9, cpus=None, extra_env=env, name="proxy-big-bodies")
    try:
        small = json.dumps({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}).encode()
        count_tokens(port, small)  # loads the tokenizer: part of idle
        idle = tree_rss_kb(child.pid) / 1024
        body = big_body(args.shape)
        reset_peak_rss(child.pid)
        started = time.monotonic()
        asyncio.run(send_all(port, body, args.bodies))
        wall = time.monotonic() - started
        peak = tree_rss_kb(child.pid, "VmHWM") / 1024
        time.sleep(args.settle)
        after = tree_rss_kb(child.pid) / 1024
    finally:
        child.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print(
        f"{args.bodies} x {len(body) / 1e6:.1f} MB ({args.shape}), {health.get('core')} core: idle {idle:.0f} MB, "
        f"peak {peak:.0f} MB, {args.settle:g} s after the last answer {after:.0f} MB (+{after - idle:.0f} MB), "
        f"wall {wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
