"""The built-in memory cache: the CacheBackend contract, TTL expiry on an injected clock, and LRU eviction."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.interfaces import CacheBackend


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> MemoryCacheBackend:
    return MemoryCacheBackend(max_entries=3, default_ttl=10.0, clock=clock)


def test_is_a_cache_backend_named_memory() -> None:
    backend = MemoryCacheBackend()
    assert isinstance(backend, CacheBackend)
    assert backend.name == MemoryCacheBackend.name == "memory"


async def test_set_then_get_returns_the_value(cache: MemoryCacheBackend) -> None:
    value = {
        "id": "msg_1",
        "content": [{"type": "text", "text": "héllo / wörld"}],
        "usage": {"input_tokens": 3},
    }
    await cache.set("k", value)
    assert await cache.get("k") == value


async def test_get_of_an_absent_key_is_none(cache: MemoryCacheBackend) -> None:
    assert await cache.get("nope") is None


async def test_get_returns_a_fresh_copy_like_a_networked_backend(cache: MemoryCacheBackend) -> None:
    value: dict[str, Any] = {"list": [1, 2], "tuple": (3, 4)}
    await cache.set("k", value)
    first = await cache.get("k")
    assert first is not None
    first["list"].append(99)
    value["list"].append(100)
    assert await cache.get("k") == {"list": [1, 2], "tuple": [3, 4]}


async def test_set_rejects_values_that_are_not_json(cache: MemoryCacheBackend) -> None:
    with pytest.raises(TypeError):
        await cache.set("k", object())
    assert await cache.get("k") is None


async def test_set_overwrites(cache: MemoryCacheBackend) -> None:
    await cache.set("k", 1)
    await cache.set("k", 2)
    assert await cache.get("k") == 2
    assert (await cache.stats())["entries"] == 1


async def test_delete_forgets_and_tolerates_absent_keys(cache: MemoryCacheBackend) -> None:
    await cache.set("k", "v")
    await cache.delete("k")
    await cache.delete("never-set")
    assert await cache.get("k") is None


async def test_clear_removes_everything_and_reports_how_many(cache: MemoryCacheBackend) -> None:
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert await cache.clear() == 2
    assert await cache.get("a") is None
    assert await cache.get("b") is None
    assert await cache.clear() == 0


async def test_stats_count_hits_and_misses(cache: MemoryCacheBackend) -> None:
    await cache.set("a", 1)
    await cache.get("a")
    await cache.get("a")
    await cache.get("missing")
    stats = await cache.stats()
    assert stats["backend"] == "memory"
    assert stats["entries"] == 1
    assert stats["hits"] == 2
    assert stats["misses"] == 1
    assert stats["evictions"] == 0
    assert stats["expirations"] == 0
    assert stats["max_entries"] == 3
    assert stats["default_ttl"] == 10.0


async def test_default_ttl_expires_entries(cache: MemoryCacheBackend, clock: FakeClock) -> None:
    await cache.set("k", "v")
    clock.advance(9.999)
    assert await cache.get("k") == "v"
    clock.advance(0.001)
    assert await cache.get("k") is None
    stats = await cache.stats()
    assert (stats["entries"], stats["expirations"], stats["hits"], stats["misses"]) == (0, 1, 1, 1)


async def test_per_entry_ttl_overrides_the_default(cache: MemoryCacheBackend, clock: FakeClock) -> None:
    await cache.set("short", 1, ttl=1.0)
    await cache.set("long", 2, ttl=100.0)
    await cache.set("default", 3)
    clock.advance(5.0)
    assert await cache.get("short") is None
    assert await cache.get("default") == 3
    clock.advance(50.0)
    assert await cache.get("default") is None
    assert await cache.get("long") == 2


async def test_a_non_positive_ttl_stores_nothing_and_drops_the_old_value(cache: MemoryCacheBackend) -> None:
    await cache.set("k", "old")
    await cache.set("k", "new", ttl=0)
    assert await cache.get("k") is None
    assert (await cache.stats())["entries"] == 0


async def test_overwrite_restarts_the_ttl(cache: MemoryCacheBackend, clock: FakeClock) -> None:
    await cache.set("k", 1)
    clock.advance(8.0)
    await cache.set("k", 2)
    clock.advance(8.0)
    assert await cache.get("k") == 2


async def test_stats_do_not_count_expired_entries(cache: MemoryCacheBackend, clock: FakeClock) -> None:
    await cache.set("a", 1, ttl=1.0)
    await cache.set("b", 2, ttl=20.0)
    clock.advance(2.0)
    stats = await cache.stats()
    assert stats["entries"] == 1
    assert stats["expirations"] == 1


async def test_the_least_recently_set_entry_is_evicted_first(cache: MemoryCacheBackend) -> None:
    for key in ("a", "b", "c", "d"):
        await cache.set(key, key)
    assert await cache.get("a") is None
    assert [await cache.get(key) for key in ("b", "c", "d")] == ["b", "c", "d"]
    assert (await cache.stats())["evictions"] == 1


async def test_a_get_makes_an_entry_recently_used(cache: MemoryCacheBackend) -> None:
    for key in ("a", "b", "c"):
        await cache.set(key, key)
    await cache.get("a")
    await cache.set("d", "d")  # evicts b, the least recently used now
    await cache.set("e", "e")  # then c
    assert await cache.get("b") is None
    assert await cache.get("c") is None
    assert [await cache.get(key) for key in ("a", "d", "e")] == ["a", "d", "e"]
    assert (await cache.stats())["evictions"] == 2


async def test_an_overwrite_makes_an_entry_recently_used(cache: MemoryCacheBackend) -> None:
    for key in ("a", "b", "c"):
        await cache.set(key, key)
    await cache.set("a", "A")
    await cache.set("d", "d")
    assert await cache.get("b") is None
    assert await cache.get("a") == "A"


async def test_expired_entries_make_room_before_live_ones_are_evicted(
    cache: MemoryCacheBackend, clock: FakeClock
) -> None:
    await cache.set("a", 1)
    await cache.set("short", 2, ttl=1.0)  # the most recently used, but expired by the next write
    await cache.set("c", 3)
    clock.advance(2.0)
    await cache.set("d", 4)
    assert [await cache.get(key) for key in ("a", "c", "d")] == [1, 3, 4]
    stats = await cache.stats()
    assert (stats["evictions"], stats["expirations"], stats["entries"]) == (0, 1, 3)


async def test_many_overwrites_keep_working_after_internal_compaction(
    cache: MemoryCacheBackend, clock: FakeClock
) -> None:
    for round_ in range(500):
        await cache.set("k", round_, ttl=1_000.0)
        clock.advance(0.01)
    await cache.delete("k")
    await cache.set("x", "x", ttl=1.0)
    clock.advance(2.0)
    assert await cache.get("x") is None
    assert (await cache.stats())["entries"] == 0


@pytest.mark.parametrize(("kwargs", "message"), [({"max_entries": 0}, "max_entries"), ({"default_ttl": 0}, "ttl")])
def test_rejects_unusable_limits(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryCacheBackend(**kwargs)
