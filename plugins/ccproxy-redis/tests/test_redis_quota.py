"""The client keys' rpm, tpm and budgets in one real Redis: two processes' stores (two links) count together, on
Redis's clock; what finished requests add reaches Redis in the background; a dead Redis falls back to per-process
counting without an error."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
from redis_testing import options

from ccproxy.quota import MemoryLimitStore
from ccproxy_redis import RedisCacheBackend, RedisLimitStore
from tests.support.limit_stores import check_in_order, record_both
from tests.support.redis_server import RedisServer


@pytest.fixture
def pair(two_backends: tuple[RedisCacheBackend, ...]) -> tuple[RedisLimitStore, RedisLimitStore]:
    """The stores of two processes."""
    return two_backends[0].shared_limit_store(), two_backends[1].shared_limit_store()


async def test_two_processes_share_one_requests_per_minute_window(
    pair: tuple[RedisLimitStore, RedisLimitStore],
) -> None:
    first, second = pair
    # Each process's own clock is ignored: the window runs on Redis's TIME.
    assert await first.take("rpm:key_a", 3, now=5.0) is None
    assert await second.take("rpm:key_a", 3, now=99_999.0) is None
    assert await first.take("rpm:key_a", 3, now=5.0) is None
    wait = await second.take("rpm:key_a", 3, now=99_999.0)
    assert wait is not None and 59.0 < wait <= 60.0  # until the first of the three leaves the minute
    assert await first.take("rpm:key_b", 3, now=5.0) is None  # another key, another window


async def test_tokens_added_by_one_process_count_against_the_others_limit(
    pair: tuple[RedisLimitStore, RedisLimitStore], raw: Redis
) -> None:
    first, second = pair
    first.add("tpm:key_a", 600, now=0.0)
    assert await second.over("tpm:key_a", 1000, now=0.0) is None  # the addition may still be on its way
    await first.flush()
    assert await second.over("tpm:key_a", 1000, now=0.0) is None  # 600 of 1000
    second.add("tpm:key_a", 400, now=0.0)
    await second.flush()
    wait = await first.over("tpm:key_a", 1000, now=0.0)
    assert wait is not None and 59.0 < wait <= 60.0
    assert float(await raw.get(first.prefix + "tpm:key_a:total")) == 1000.0
    assert 60_000 < await raw.pttl(first.prefix + "tpm:key_a") <= 61_000  # forgotten with the window


async def test_a_window_forgets_what_left_it(redis_server: RedisServer, prefix: str) -> None:
    """On a fake clock (one process only), the window slides exactly: the total drops as the oldest event leaves."""
    backend = RedisCacheBackend(options(redis_server.url, prefix))
    await backend.open()
    try:
        store = RedisLimitStore(backend.link, server_clock=False)
        store.add("tpm:k", 700, now=100.0)
        store.add("tpm:k", 300, now=130.0)
        await store.flush()
        assert await store.over("tpm:k", 1000, now=150.0) == pytest.approx(10.0)  # the 700 leaves at 160
        assert await store.over("tpm:k", 1000, now=160.0) is None  # only the 300 is left
        assert await store.take("rpm:k", 1, now=100.0) is None
        assert await store.take("rpm:k", 1, now=159.5) == pytest.approx(0.5)
        assert await store.take("rpm:k", 1, now=160.0) is None
    finally:
        await backend.close()


async def test_budgets_sum_what_every_process_spent_and_end_with_their_period(
    pair: tuple[RedisLimitStore, RedisLimitStore], raw: Redis
) -> None:
    first, second = pair
    ends = time.time() + 3600
    first.spend("budget:key_a:2026-11-30", 0.6, ends)
    second.spend("budget:key_a:2026-11-30", 0.000052, ends)  # a small cost: written with an exponent by repr
    second.spend("budget:key_a:2026-11-30", 0.5, ends)
    await asyncio.gather(first.flush(), second.flush())
    assert await first.spent("budget:key_a:2026-11-30") == pytest.approx(1.100052)
    assert await second.spent("budget:key_a:2026-11-30") == pytest.approx(1.100052)
    assert await first.spent("budget:key_b:2026-11-30") == 0.0
    assert 3590 < await raw.ttl(first.prefix + "budget:key_a:2026-11-30") <= 3601


async def test_additions_without_a_running_loop_are_counted_in_this_process(redis_server: RedisServer) -> None:
    store = RedisLimitStore(RedisCacheBackend(options(redis_server.url, "unused:")).link)

    def from_a_thread() -> None:
        store.add("tpm:k", 5, now=0.0)
        store.spend("budget:k:2026-11", 0.25, time.time() + 60)

    await asyncio.to_thread(from_a_thread)
    assert isinstance(store.fallback, MemoryLimitStore)
    assert await store.fallback.spent("budget:k:2026-11") == 0.25
    assert await store.fallback.over("tpm:k", 5, now=0.0) is not None


async def test_while_redis_is_down_keys_are_limited_per_process(outage_server: RedisServer, prefix: str) -> None:
    backend = RedisCacheBackend(
        options(outage_server.url, prefix, socket_timeout=0.3, connect_timeout=0.3, retry_interval=0.1)
    )
    await backend.open()
    store = backend.shared_limit_store()
    try:
        outage_server.kill()
        assert await store.take("rpm:k", 2, now=100.0) is None
        assert await store.take("rpm:k", 2, now=100.0) is None
        assert await store.take("rpm:k", 2, now=110.0) == 50.0  # the in-process window, on the caller's clock
        store.spend("budget:k:2026-11", 0.5, time.time() + 60)
        store.add("tpm:k", 10, now=100.0)
        await store.flush()
        assert await store.spent("budget:k:2026-11") == 0.5
        assert await store.over("tpm:k", 10, now=100.0) == 60.0
        assert await store.check(100.0, rpm=("rpm:one", 1)) is None
        assert await store.check(100.0, budget=("budget:k:2026-11", 0.5), rpm=("rpm:one", 1)) == ("budget", 0.5)
        store.record(100.0, tokens=("tpm:k", 5.0))
        await store.flush()
        assert await store.over("tpm:k", 16, now=100.0) is None and await store.over("tpm:k", 15, now=100.0) == 60.0
    finally:
        await backend.close()


async def test_check_and_record_answer_like_the_in_process_store_in_one_round_trip_each(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RedisCacheBackend(options(redis_server.url, prefix))
    await backend.open()
    try:
        store = RedisLimitStore(backend.link, server_clock=False)
        await check_in_order(store)
        trips = []
        run = backend.link.run
        monkeypatch.setattr(backend.link, "run", lambda operation: trips.append(1) or run(operation))
        assert await store.check(200.0, tpm=("tpm:k", 10**6), budget=("budget:k:d", 5.0), rpm=("rpm:k", 10)) is None
        assert trips == [1]
        store.record(200.0, tokens=("tpm:k", 10.0), cost=("budget:k:d", 0.5, time.time() + 60))
        await store.flush()
        assert trips == [1, 1]
        monkeypatch.undo()
        await record_both(store)
    finally:
        await backend.close()
