"""The Redis cache backend against a real redis-server: the CacheBackend contract, TTLs, prefix isolation, stats."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis_testing import options

from ccproxy_redis import RedisCacheBackend
from tests.support.redis_server import RedisServer


async def test_set_then_get_returns_the_value(backend: RedisCacheBackend) -> None:
    value = {"id": "msg_1", "content": [{"type": "text", "text": "héllo / wörld 🎉"}], "usage": {"n": 3}, "ok": None}
    await backend.set("k", value)
    assert await backend.get("k") == value


async def test_get_of_an_absent_key_is_none(backend: RedisCacheBackend) -> None:
    assert await backend.get("nope") is None


async def test_values_come_back_as_json_would_give_them(backend: RedisCacheBackend) -> None:
    await backend.set("k", {"tuple": (1, 2), "float": 1.5, "int": 7, "true": True})
    assert await backend.get("k") == {"tuple": [1, 2], "float": 1.5, "int": 7, "true": True}
    await backend.set("lone", "cut emoji \ud83d")  # some backends split surrogate pairs between chunks
    assert await backend.get("lone") == "cut emoji \ud83d"


async def test_a_value_ccproxy_did_not_write_is_a_miss(backend: RedisCacheBackend, raw: Any) -> None:
    await raw.set(backend.prefix + "foreign", b"\xff not json")
    assert await backend.get("foreign") is None


async def test_set_rejects_values_that_are_not_json(backend: RedisCacheBackend) -> None:
    with pytest.raises(TypeError):
        await backend.set("k", object())
    assert await backend.get("k") is None


async def test_set_overwrites_and_delete_forgets(backend: RedisCacheBackend) -> None:
    await backend.set("k", 1)
    await backend.set("k", 2)
    assert await backend.get("k") == 2
    await backend.delete("k")
    await backend.delete("never-set")
    assert await backend.get("k") is None


async def test_entries_expire_after_the_default_or_their_own_ttl(redis_server: RedisServer, prefix: str) -> None:
    backend = RedisCacheBackend(options(redis_server.url, prefix, default_ttl=0.3))
    try:
        await backend.set("default", 1)
        await backend.set("short", 2, ttl=0.1)
        await backend.set("long", 3, ttl=60)
        await asyncio.sleep(0.15)
        assert [await backend.get(key) for key in ("default", "short", "long")] == [1, None, 3]
        await asyncio.sleep(0.25)
        assert [await backend.get(key) for key in ("default", "short", "long")] == [None, None, 3]
    finally:
        await backend.close()


async def test_the_ttl_is_set_in_redis(backend: RedisCacheBackend, raw: Any) -> None:
    await backend.set("k", 1, ttl=42)
    assert 41_000 < await raw.pttl(backend.prefix + "k") <= 42_000
    await backend.set("d", 1)
    assert 299_000 < await raw.pttl(backend.prefix + "d") <= 300_000


async def test_a_non_positive_ttl_stores_nothing_and_drops_the_old_value(backend: RedisCacheBackend) -> None:
    await backend.set("k", "old")
    await backend.set("k", "new", ttl=0)
    assert await backend.get("k") is None


async def test_clear_removes_only_its_own_prefix(redis_server: RedisServer, prefix: str, raw: Any) -> None:
    mine = RedisCacheBackend(options(redis_server.url, prefix))
    neighbour = RedisCacheBackend(options(redis_server.url, prefix + "other:"))
    try:
        for index in range(1200):  # more than one SCAN batch
            await mine.set(f"k{index}", index)
        await neighbour.set("k1", "theirs")
        await raw.set("unrelated-key", "x")
        await mine.shared_states().limiter.acquire("backend", 0.0, 0, 10, 0)  # limiter state is not cache
        assert await mine.clear() == 1200
        assert await mine.get("k1") is None
        assert await neighbour.get("k1") == "theirs"
        assert await raw.get("unrelated-key") == b"x"
        assert await raw.exists(f"{prefix}limiter:window:backend") == 1
        assert await mine.clear() == 0
    finally:
        await raw.delete("unrelated-key")
        await mine.close()
        await neighbour.close()


async def test_a_prefix_with_glob_characters_matches_only_itself(redis_server: RedisServer, prefix: str) -> None:
    star = RedisCacheBackend(options(redis_server.url, prefix + "a*["))
    plain = RedisCacheBackend(options(redis_server.url, prefix + "ab["))
    try:
        await star.set("k", 1)
        await plain.set("k", 2)
        assert await star.clear() == 1
        assert await plain.get("k") == 2
    finally:
        await star.close()
        await plain.close()


async def test_stats_count_for_the_whole_fleet(redis_server: RedisServer, prefix: str) -> None:
    # Two backends on one prefix are two worker processes: hits and misses add up, entries are shared.
    first = RedisCacheBackend(options(redis_server.url, prefix))
    second = RedisCacheBackend(options(redis_server.url, prefix))
    try:
        await first.set("a", 1)
        await second.set("b", 2)
        assert await first.get("a") == 1
        assert await second.get("a") == 1
        assert await second.get("missing") is None
        stats = await first.stats()
        assert (stats["backend"], stats["entries"], stats["hits"], stats["misses"]) == ("redis", 2, 2, 1)
        assert stats["healthy"] is True and stats["redis"]["healthy"] is True
        assert stats["key_prefix"] == prefix and stats["default_ttl"] == 300.0
        assert isinstance(stats["evictions"], int) and isinstance(stats["bytes"], int) and stats["bytes"] > 0
        assert stats["redis"]["url"] == redis_server.url
        await first.clear()
        assert (await second.stats())["entries"] == 0
    finally:
        await first.close()
        await second.close()


async def test_scripts_are_loaded_again_after_a_script_flush(backend: RedisCacheBackend, raw: Any) -> None:
    await backend.set("k", 1)
    assert await backend.get("k") == 1
    await raw.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert await backend.get("k") == 1
    assert (await backend.stats())["healthy"] is True


async def test_the_pool_is_created_on_first_use_when_open_was_not_called(
    redis_server: RedisServer, prefix: str
) -> None:
    backend = RedisCacheBackend(options(redis_server.url, prefix))
    try:
        await backend.set("k", 1)
        assert await backend.get("k") == 1
    finally:
        await backend.close()
