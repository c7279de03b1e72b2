"""Redis goes away mid-test: nothing fails for the caller, one log line each way, fallbacks, and recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis_testing import Records, options

from ccproxy.upstream import Admission, Outcome
from ccproxy_redis import RedisCacheBackend
from ccproxy_redis.link import PROBE_TASK
from tests.support.redis_server import RedisServer

SOCKET_TIMEOUT = 0.3
RETRY_INTERVAL = 0.1
RECOVERY_TIMEOUT = 10.0


def fast_failing(server: RedisServer, prefix: str) -> RedisCacheBackend:
    return RedisCacheBackend(
        options(
            server.url,
            prefix,
            socket_timeout=SOCKET_TIMEOUT,
            connect_timeout=SOCKET_TIMEOUT,
            retry_interval=RETRY_INTERVAL,
        )
    )


@pytest.fixture
async def backend(outage_server: RedisServer, prefix: str) -> AsyncIterator[RedisCacheBackend]:
    """A backend on the test's own server, opened while that server is up."""
    opened = fast_failing(outage_server, prefix)
    await opened.open()
    yield opened
    await opened.close()


async def until(condition: Callable[[], bool], timeout: float = RECOVERY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        await asyncio.sleep(0.02)


async def every_operation(backend: RedisCacheBackend, key: str) -> list[Any]:
    """Each cache and state operation once; what they returned."""
    states = backend.shared_states()
    return [
        await backend.get(key),
        await backend.set(key, {"v": 1}),
        await backend.delete(key),
        await backend.clear(),
        await states.limiter.acquire("b", 100.0, 0, 1000, 0),
        await states.limiter.feedback("b", Outcome.ANSWERED),
        await states.breaker.admit("b", 100.0, 60.0),
        await states.breaker.record("b", failed=False, trial=False, now=100.0, threshold=3),
        await states.breaker.release("b"),
    ]


@pytest.fixture
async def raw(outage_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client, to look at (and change) the server behind the backend's back."""
    client = Redis.from_url(outage_server.url)
    yield client
    await client.aclose()


async def timed(operation: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await operation
    return result, time.monotonic() - started


async def test_a_killed_redis_costs_no_error_and_comes_back(
    outage_server: RedisServer, backend: RedisCacheBackend, raw: Redis, redis_log: Records
) -> None:
    await backend.set("k", "cached")
    assert await backend.get("k") == "cached"
    outage_server.kill()

    started = time.monotonic()
    for round_ in range(20):
        results = await every_operation(backend, f"k{round_}")
        assert results == [None, None, None, 0, 0.0, None, Admission(True), None, None]
    assert time.monotonic() - started < 2.0  # refused connections fail at once, then Redis is skipped
    assert len(redis_log.messages("unavailable")) == 1
    stats = await backend.stats()
    assert stats["healthy"] is False and stats["entries"] is None and stats["hits"] is None
    health = stats["redis"]
    assert (health["healthy"], health["outages"], health["failed_operations"]) == (False, 1, 1)
    assert health["skipped_operations"] >= 20 * 9 - 1 and "Connection" in health["last_error"]

    outage_server.start()  # same port, empty: nothing survived the crash
    await until(lambda: backend.link.up)
    assert len(redis_log.messages("is back")) == 1
    assert len(redis_log.messages("unavailable")) == 1
    await backend.set("k", "again")
    assert await raw.get(backend.prefix + "k") == b'"again"'  # in Redis, not only in this process
    assert await backend.get("k") == "again"
    assert (await backend.stats())["healthy"] is True


async def test_while_redis_is_down_limits_hold_per_process(
    outage_server: RedisServer, backend: RedisCacheBackend
) -> None:
    states = backend.shared_states()
    outage_server.kill()
    assert await states.limiter.acquire("b", 100.0, 0, 2, 0) == 0.0
    assert await states.limiter.acquire("b", 100.0, 0, 2, 0) == 0.0
    assert await states.limiter.acquire("b", 110.0, 0, 2, 0) == 50.0  # the in-process window, on its clock
    for _ in range(3):
        await states.breaker.record("b", failed=True, trial=False, now=100.0, threshold=3)
    assert await states.breaker.admit("b", 100.0, 60.0) == Admission(False, retry_after=60.0)


async def test_a_hung_redis_delays_one_request_by_the_timeout_then_none(
    outage_server: RedisServer, backend: RedisCacheBackend, redis_log: Records
) -> None:
    await backend.set("k", 1)
    outage_server.pause()  # accepts connections, answers nothing
    value, first = await timed(backend.get("k"))
    assert value is None and SOCKET_TIMEOUT * 0.8 < first < SOCKET_TIMEOUT + 0.5
    for _ in range(10):
        value, later = await timed(backend.get("k"))
        assert value is None and later < SOCKET_TIMEOUT / 3  # skipped: known down, not waited for
    admitted, later = await timed(backend.shared_states().limiter.acquire("b", 0.0, 0, 10, 0))
    assert admitted == 0.0 and later < SOCKET_TIMEOUT / 3
    assert "Timeout" in backend.link.health()["last_error"]
    outage_server.resume()
    await until(lambda: backend.link.up)
    assert await backend.get("k") == 1  # the same server, its data intact
    assert len(redis_log.messages("unavailable")) == len(redis_log.messages("is back")) == 1


async def test_a_redis_down_at_start_up_is_reported_and_picked_up_later(
    outage_server: RedisServer, prefix: str, redis_log: Records
) -> None:
    outage_server.kill()
    backend = fast_failing(outage_server, prefix)
    await backend.open()  # never raises: the server starts without Redis
    try:
        assert not backend.link.up
        assert await backend.get("k") is None
        assert len(redis_log.messages("unavailable")) == 1
        outage_server.start()
        await until(lambda: backend.link.up)
        await backend.set("k", 1)
        assert await backend.get("k") == 1
    finally:
        await backend.close()


async def test_concurrent_requests_during_an_outage_log_once(
    outage_server: RedisServer, backend: RedisCacheBackend, redis_log: Records
) -> None:
    outage_server.kill()
    results = await asyncio.gather(*(backend.get(f"k{index}") for index in range(50)))
    assert results == [None] * 50
    assert len(redis_log.messages("unavailable")) == 1
    assert backend.link.outages == 1


def probes() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == PROBE_TASK]


async def test_closing_while_down_stops_the_probe(outage_server: RedisServer, backend: RedisCacheBackend) -> None:
    outage_server.kill()
    await backend.get("k")
    assert not backend.link.up
    assert len(probes()) == 1
    await backend.close()
    assert probes() == []


async def test_a_full_redis_refuses_writes_without_being_taken_for_down(
    backend: RedisCacheBackend, raw: Redis, redis_log: Records
) -> None:
    await backend.set("small", "kept")
    await raw.config_set("maxmemory-policy", "noeviction")
    await raw.config_set("maxmemory", "1")  # every write is now refused with OOM
    for index in range(5):
        await backend.set(f"big{index}", "x" * 10_000)  # no exception
    assert await backend.shared_states().limiter.acquire("b", 0.0, 0, 10, 0) == 0.0  # the in-process window
    assert await backend.get("small") == "kept"  # reads still come from Redis
    health = backend.link.health()
    assert (health["healthy"], health["refused_operations"], health["outages"]) == (True, 6, 0)
    assert health["last_error"].startswith("OutOfMemoryError")
    assert len(redis_log.messages("refused")) == 1  # the same error again is not logged again
    assert redis_log.messages("unavailable") == []
    await raw.config_set("maxmemory", "0")
    await backend.set("big", "x" * 10_000)
    assert await backend.get("big") == "x" * 10_000
