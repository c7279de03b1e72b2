"""The memory cache's byte bound: keys plus JSON values, least recently used evicted first, sizes in the stats."""

from __future__ import annotations

import pytest

from ccproxy.default_plugins.memory_cache import DEFAULT_MAX_BYTES, MemoryCacheBackend, memory_cache_from_options
from tests.test_memory_cache import FakeClock


def size(key: str, value: str) -> int:
    """What an entry of a string value costs: the key and the JSON text with its quotes."""
    return len(key) + len(value) + 2


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> MemoryCacheBackend:
    # Room for three 30-byte entries, not four; far more entries than that allowed.
    return MemoryCacheBackend(max_entries=100, max_bytes=95, default_ttl=10.0, clock=clock)


async def test_stats_report_the_bytes_held(cache: MemoryCacheBackend) -> None:
    await cache.set("a", "x" * 10)
    await cache.set("bb", {"k": [1, 2]})
    stats = await cache.stats()
    assert stats["bytes"] == size("a", "x" * 10) + 2 + len('{"k":[1,2]}')
    assert (stats["max_bytes"], stats["entries"], stats["evictions"]) == (95, 2, 0)


async def test_the_least_recently_used_entries_go_when_the_bytes_run_out(cache: MemoryCacheBackend) -> None:
    for key in ("k1", "k2", "k3"):
        await cache.set(key, "v" * 26)  # 30 bytes each
    await cache.get("k1")  # k2 is now the least recently used
    await cache.set("k4", "v" * 26)
    assert await cache.get("k2") is None
    assert [await cache.get(key) is not None for key in ("k1", "k3", "k4")] == [True, True, True]
    stats = await cache.stats()
    assert (stats["entries"], stats["bytes"], stats["evictions"]) == (3, 90, 1)


async def test_a_large_entry_evicts_as_many_as_it_needs(cache: MemoryCacheBackend) -> None:
    for key in ("k1", "k2", "k3"):
        await cache.set(key, "v" * 26)
    await cache.set("big", "v" * 60)  # 65 bytes: two of the three must go
    assert [await cache.get(key) is not None for key in ("k1", "k2", "k3", "big")] == [False, False, True, True]
    stats = await cache.stats()
    assert (stats["bytes"], stats["evictions"]) == (95, 2)


async def test_an_entry_larger_than_the_whole_cache_is_not_stored_and_evicts_nothing(
    cache: MemoryCacheBackend,
) -> None:
    await cache.set("keep", "v")
    await cache.set("big", "old")
    await cache.set("big", "v" * 200)
    assert await cache.get("big") is None  # neither the new value nor the old one
    assert await cache.get("keep") == "v"
    stats = await cache.stats()
    assert (stats["too_large"], stats["evictions"], stats["bytes"]) == (1, 0, size("keep", "v"))


async def test_overwrites_deletes_expiry_and_clear_give_the_bytes_back(
    cache: MemoryCacheBackend, clock: FakeClock
) -> None:
    await cache.set("k", "v" * 40)
    await cache.set("k", "v")
    assert (await cache.stats())["bytes"] == size("k", "v")
    await cache.delete("k")
    assert (await cache.stats())["bytes"] == 0
    await cache.set("short", "v", ttl=1.0)
    await cache.set("other", "v")
    clock.advance(2.0)
    assert (await cache.stats())["bytes"] == size("other", "v")
    await cache.clear()
    assert (await cache.stats())["bytes"] == 0


def test_options_set_the_byte_bound_and_the_default_is_64_mib() -> None:
    assert memory_cache_from_options({"max_bytes": 1024}).max_bytes == 1024
    assert memory_cache_from_options({}).max_bytes == DEFAULT_MAX_BYTES == 64 * 1024 * 1024


def test_rejects_a_byte_bound_below_one() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryCacheBackend(max_bytes=0)
