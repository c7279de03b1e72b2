"""The built-in cache backend: an in-process LRU bounded by entries and bytes, whose entries expire after a TTL."""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ccproxy.core.jsoncodec import dumps, loads
from ccproxy.hookspecs import RegisterCacheBackend, hookimpl
from ccproxy.interfaces import CacheBackend

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_TTL = 300.0


class MemoryCacheBackend(CacheBackend):
    """LRU eviction at `max_entries` entries or `max_bytes` bytes, whichever comes first; lazy expiry (on access and
    on writes), no background task.

    Values are stored as JSON bytes, so callers get a fresh copy on every `get` and see exactly what a networked
    backend would return (tuples come back as lists; a value that is not JSON fails at `set`, not later in
    production with Redis). `max_bytes` counts the keys and the JSON values; Python's own per-entry overhead (a
    couple of hundred bytes) is what `max_entries` bounds.
    """

    name = "memory"

    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        default_ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if default_ttl <= 0:
            raise ValueError(f"default_ttl must be positive, got {default_ttl}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.default_ttl = default_ttl
        self._clock = clock
        # key -> (expires_at, JSON bytes); order is recency, least recently used first.
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0  # keys plus values of the live entries
        # (expires_at, key) min-heap so expired entries are found without scanning; items for keys since
        # overwritten or deleted are stale and skipped when popped.
        self._expiry: list[tuple[float, str]] = []
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0
        self._too_large = 0

    async def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] <= self._clock():
            self._remove(key)
            self._expirations += 1
            entry = None
        if entry is None:
            self._misses += 1
            return None
        self._hits += 1
        self._entries.move_to_end(key)
        return loads(entry[1])

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        data = dumps(value)
        ttl = self.default_ttl if ttl is None else ttl
        self._remove(key)
        size = len(key) + len(data)
        if ttl <= 0:
            return  # already expired: storing it would only make a later get miss
        if size > self.max_bytes:
            self._too_large += 1  # it would evict everything and still not fit
            return
        now = self._clock()
        self._drop_expired(now)
        while self._entries and (len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes):
            self._remove(next(iter(self._entries)))
            self._evictions += 1
        expires_at = now + ttl
        self._entries[key] = (expires_at, data)
        self._bytes += size
        heapq.heappush(self._expiry, (expires_at, key))
        self._compact_expiry()

    async def delete(self, key: str) -> None:
        self._remove(key)

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return False
        await self.set(key, value, ttl)  # no await point before this: atomic on the loop
        return True

    async def clear(self) -> int:
        removed = len(self._entries)
        self._entries.clear()
        self._expiry.clear()
        self._bytes = 0
        return removed

    async def stats(self) -> dict[str, Any]:
        self._drop_expired(self._clock())
        return {
            "backend": self.name,
            "entries": len(self._entries),
            "max_entries": self.max_entries,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "default_ttl": self.default_ttl,
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "expirations": self._expirations,
            "too_large": self._too_large,
            "healthy": True,
        }

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(key) + len(entry[1])

    def _drop_expired(self, now: float) -> None:
        """Remove every entry whose time has come, cheapest first, so capacity goes to live entries."""
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiry)
            entry = self._entries.get(key)
            if entry is not None and entry[0] == expires_at:
                self._remove(key)
                self._expirations += 1

    def _compact_expiry(self) -> None:
        # Overwrites and deletes leave stale heap items behind; rebuild once they outnumber live entries.
        if len(self._expiry) > 2 * len(self._entries) + 64:
            self._expiry = [(expires_at, key) for key, (expires_at, _) in self._entries.items()]
            heapq.heapify(self._expiry)


def memory_cache_from_options(options: Mapping[str, Any]) -> MemoryCacheBackend:
    """`[plugins.memory]`: `max_entries` (default 10000), `max_bytes` (default 64 MiB) and `default_ttl` seconds
    (default 300)."""
    return MemoryCacheBackend(
        max_entries=int(options.get("max_entries", DEFAULT_MAX_ENTRIES)),
        max_bytes=int(options.get("max_bytes", DEFAULT_MAX_BYTES)),
        default_ttl=float(options.get("default_ttl", DEFAULT_TTL)),
    )


@hookimpl
def ccproxy_register_cache_backends(register: RegisterCacheBackend) -> None:
    register(MemoryCacheBackend.name, memory_cache_from_options)
