"""GET /v1/usage's totals in one real Redis (ccproxy_redis.usage): two processes' sums read as one, a day per hash,
a publish counted once even when it is sent again, and nothing lost while Redis is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis_testing import options

from ccproxy.usage import KEEP_DAYS, SharedUnavailable, UsageTotals
from ccproxy_redis import RedisCacheBackend
from ccproxy_redis.link import Unavailable
from ccproxy_redis.usage import RedisUsage
from tests.support.redis_server import RedisServer
from tests.support.shared_usage import Wall, day_of, done, one_day_is_read_alone, two_processes_read_as_one


@pytest.fixture
def pair(two_backends: tuple[RedisCacheBackend, ...]) -> tuple[RedisUsage, RedisUsage]:
    """The stores of two processes."""
    return two_backends[0].shared_usage_store(), two_backends[1].shared_usage_store()


async def test_two_processes_read_as_one(pair: tuple[RedisUsage, RedisUsage]) -> None:
    await two_processes_read_as_one(*pair)


async def test_one_day_is_read_alone(pair: tuple[RedisUsage, RedisUsage]) -> None:
    await one_day_is_read_alone(*pair)


async def test_a_day_is_one_hash_kept_for_as_long_as_the_process_keeps_its_rows(
    pair: tuple[RedisUsage, RedisUsage], raw: Redis, prefix: str
) -> None:
    store, _ = pair
    totals = UsageTotals(Wall())
    totals.add_all([done("key_a", "vendor/model", 10, 5, 0.5)])
    await store.publish(totals)
    day = day_of(totals.wall())
    fields = await raw.hgetall(f"{prefix}usage:{day}")
    assert fields == {
        b'["requests","key_a","vendor/model"]': b"1",
        b'["input_tokens","key_a","vendor/model"]': b"10",
        b'["output_tokens","key_a","vendor/model"]': b"5",
        b'["cost_usd","key_a","vendor/model"]': b"0.5",
    }  # counters that are 0 are not written
    ttl = await raw.ttl(f"{prefix}usage:{day}")
    assert KEEP_DAYS * 86400 < ttl <= (KEEP_DAYS + 1) * 86400
    rows, _ = await store.read(totals)
    assert rows == {(day, "key_a", "vendor/model"): [1.0, 0.0, 10.0, 5.0, 0.0, 0.0, 0.5, 0.0]}
    await raw.hset(f"{prefix}usage:{day}", mapping={"not ours": "1", '["requests","x"]': "2", '["nope","k","m"]': "3"})
    assert await store.read(totals) == (rows, pytest.approx(totals.since, abs=1e-3))  # other fields are skipped


async def test_any_key_id_and_model_name_survive_redis(pair: tuple[RedisUsage, RedisUsage]) -> None:
    """A plugin authenticator's key id and a client's model name may hold any text: separators, quotes, a lone
    surrogate (which a JSON request may carry); an infinite cost is left out rather than refused."""
    store, other = pair
    totals = UsageTotals(Wall())
    strange = ('team|a"b', 'a\ud800b|["c"]')
    totals.add_all([done(strange[0], strange[1], 1, 1, float("inf"))])
    await store.publish(totals)
    totals.add_all([done("key_a", "gpt-5", 1, 1, None)])
    await store.publish(totals)  # the first publish held nothing up
    rows, _ = await other.read(UsageTotals(Wall()))
    assert {row_key[1:]: row[:4] for row_key, row in rows.items()} == {
        strange: [1.0, 0.0, 1.0, 1.0],
        ("key_a", "gpt-5"): [1.0, 0.0, 1.0, 1.0],
    }


async def test_a_publish_sent_again_after_an_unknown_outcome_is_counted_once(
    pair: tuple[RedisUsage, RedisUsage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dropped after Redis applied a publish: the process cannot tell and sends it again."""
    store, other = pair
    totals = UsageTotals(Wall())
    totals.add_all([done("key_a", "gpt-5", 10, 5, 0.5)])
    run = store.link.run

    async def applied_then_lost(operation: Callable[[Redis], Awaitable[Any]]) -> Any:
        await run(operation)
        raise Unavailable("the answer never came")

    monkeypatch.setattr(store.link, "run", applied_then_lost)
    with pytest.raises(SharedUnavailable):
        await store.publish(totals)
    monkeypatch.setattr(store.link, "run", run)
    totals.add_all([done("key_a", "gpt-5", 1, 1, None)])  # more, while the first publish is in doubt
    await store.publish(totals)
    rows, _ = await other.read(UsageTotals(Wall()))
    assert [row[:4] for row in rows.values()] == [[2.0, 0.0, 11.0, 6.0]]


async def test_nothing_is_lost_while_redis_is_down(outage_server: RedisServer, prefix: str) -> None:
    backend = RedisCacheBackend(
        options(outage_server.url, prefix, socket_timeout=0.3, connect_timeout=0.3, retry_interval=0.1)
    )
    await backend.open()
    store = backend.shared_usage_store()
    totals = UsageTotals(Wall())
    try:
        outage_server.kill()
        for tokens in (1, 2, 3):
            totals.add_all([done("key_a", "gpt-5", tokens, 0, None)])
            with pytest.raises(SharedUnavailable):
                await store.publish(totals)
        with pytest.raises(SharedUnavailable):
            await store.read(totals)
        outage_server.start()  # empty: what waited is all there is
        deadline = time.monotonic() + 15
        while not backend.link.up:
            assert time.monotonic() < deadline, "the link never found Redis back"
            await asyncio.sleep(0.05)
        await store.publish(totals)
        rows, _ = await store.read(UsageTotals(Wall()))
        assert [row[:3] for row in rows.values()] == [[3.0, 0.0, 6.0]]
    finally:
        await backend.close()
