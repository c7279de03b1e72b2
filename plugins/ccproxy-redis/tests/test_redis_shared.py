"""Several processes share limits and circuits through one real Redis, on Redis's clock, not their own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis_testing import options

from ccproxy.upstream import (
    Admission,
    CircuitBreakerUpstream,
    RateLimitedUpstream,
    UpstreamRequest,
    UpstreamStatusError,
)
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from ccproxy_redis import RedisCacheBackend, RedisLimiterState, RedisLink
from tests.support.redis_server import RedisServer

WORKER = Path(__file__).with_name("redis_worker.py")
REPO_ROOT = Path(__file__).resolve().parents[3]
THRESHOLD = 3


async def run_worker(**job: Any) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        json.dumps(job),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(stdout)
    return result


def request() -> UpstreamRequest:
    return UpstreamRequest("/chat/completions", b"{}", False, time.monotonic() + 60)


async def test_two_processes_together_never_exceed_rpm(redis_server: RedisServer, prefix: str) -> None:
    job = {"job": "limit", "url": redis_server.url, "prefix": prefix, "key": "openrouter", "rpm": 20}
    job |= {"attempts": 20, "barrier": f"{prefix}barrier", "parties": 2}
    first, second = await asyncio.gather(run_worker(**job), run_worker(**job))
    assert first["admitted"] + second["admitted"] == 20  # each alone would have let 20 through
    assert first["refused"] + second["refused"] == 20
    assert first["other"] == second["other"] == 0
    assert first["redis_up"] and second["redis_up"]


async def test_a_circuit_opened_by_one_process_is_open_for_another(redis_server: RedisServer, prefix: str) -> None:
    backend = RedisCacheBackend(options(redis_server.url, prefix))
    failing = FakeUpstream(lambda request: FakeResponse.json({"error": {"message": "down"}}, status=503))
    breaker = CircuitBreakerUpstream(
        failing, name="local", failures=THRESHOLD, cooldown=30.0, state=backend.shared_states().breaker
    )
    try:
        for _ in range(THRESHOLD):
            with pytest.raises(UpstreamStatusError):
                await breaker.send(request())
        job = {"job": "send", "url": redis_server.url, "prefix": prefix, "key": "local"}
        other = await run_worker(**job, failures=THRESHOLD, cooldown=30.0)
        assert other["result"] == "unavailable" and other["reached"] == 0
        assert 25.0 < other["retry_after"] <= 30.0
        unrelated = await run_worker(**(job | {"key": "another-backend"}), failures=THRESHOLD, cooldown=30.0)
        assert unrelated["result"] == 200
    finally:
        await backend.close()


async def test_one_trial_for_the_fleet_and_a_dead_holder_does_not_wedge_it(
    redis_server: RedisServer, prefix: str
) -> None:
    trial_ttl, cooldown = 3.0, 0.3  # the claim outlives the worker process tearing down, even on a busy machine
    backend = RedisCacheBackend(options(redis_server.url, prefix, breaker_trial_ttl=trial_ttl))
    state = backend.shared_states().breaker
    try:
        for _ in range(THRESHOLD):
            await state.record("b", failed=True, trial=False, now=0.0, threshold=THRESHOLD)
        await asyncio.sleep(cooldown + 0.05)
        job = {"url": redis_server.url, "prefix": prefix, "key": "b", "cooldown": cooldown}
        claimed = await run_worker(job="claim-and-die", options={"breaker_trial_ttl": trial_ttl}, **job)
        assert claimed == {"allowed": True, "trial": True}
        claimed_at = time.monotonic()
        assert await state.admit("b", 0.0, cooldown) == Admission(False)  # the dead worker still holds the trial
        await asyncio.sleep(max(0.0, trial_ttl - (time.monotonic() - claimed_at)) + 0.1)
        assert await state.admit("b", 0.0, cooldown) == Admission(True, trial=True)  # its claim expired
        await state.record("b", failed=False, trial=True, now=0.0, threshold=THRESHOLD)
        closed = await run_worker(job="send", failures=THRESHOLD, **job)
        assert closed == {"result": 200, "reached": 1, "redis_up": True}
    finally:
        await backend.close()


async def test_instances_whose_clocks_disagree_share_one_window(redis_server: RedisServer, prefix: str) -> None:
    # Each process passes its own time.monotonic(), which means nothing to another: Redis's TIME is what counts.
    links = [RedisLink(options(redis_server.url, prefix)) for _ in range(2)]
    early, late = (RedisLimiterState(link) for link in links)
    try:
        assert await early.acquire("b", 5.0, 0, 2, 0) == 0.0
        assert await late.acquire("b", 9e9, 0, 2, 0) == 0.0
        wait = await early.acquire("b", 5.0, 0, 2, 0)
        assert 59.0 < wait <= 60.0
        assert 59.0 < await late.acquire("b", -1e9, 0, 2, 0) <= 60.0
    finally:
        for link in links:
            await link.close()


async def test_a_healthy_backend_costs_two_round_trips_per_request(redis_server: RedisServer, prefix: str) -> None:
    # Admit + acquire; the success's record and feedback change nothing while the circuit is clean and the rate
    # full, so they are not sent. After a failure or a 429 they are, until each is back to normal.
    backend = RedisCacheBackend(options(redis_server.url, prefix))
    states = backend.shared_states()
    answers = [FakeResponse.json({}, status=200)]
    fake = FakeUpstream(lambda request: answers[0])
    limited = RateLimitedUpstream(fake, name="b", rpm=10_000, tpm=0, limit_wait=0.0, state=states.limiter)
    stack = CircuitBreakerUpstream(limited, name="b", failures=THRESHOLD, cooldown=30.0, state=states.breaker)
    raw = Redis.from_url(redis_server.url)

    async def round_trips(status: int, requests: int = 1) -> int:
        answers[0] = FakeResponse.json({}, status=status)
        before = await scripts_run(raw)
        for _ in range(requests):
            with contextlib.suppress(UpstreamStatusError):
                await stack.send(request())
        return await scripts_run(raw) - before

    try:
        assert await round_trips(200, 10) == 20
        assert await round_trips(503) == 3  # the breaker counts the failure
        assert await round_trips(200) == 3  # and this success clears it
        assert await round_trips(200, 10) == 20
        assert await round_trips(429) == 3  # the limiter hears of the 429
        assert await round_trips(200) == 3  # below the full rate, each success counts
    finally:
        await raw.aclose()
        await backend.close()


async def scripts_run(client: Redis) -> int:
    """Scripts Redis ran (an EVALSHA answered NOSCRIPT, before the script is loaded, is a failed call)."""
    stats = (await client.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))
