"""The built-in cache backend: an in-process LRU whose entries expire after a per-entry TTL."""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from ccproxy.core.jsoncodec import dumps_text, loads
from ccproxy.hookspecs import RegisterCacheBackend, hookimpl
from ccproxy.interfaces import CacheBackend


def _dumps(value: Any) -> str:
    return dumps_text(value)


class MemoryCacheBackend(CacheBackend):
    """LRU eviction at `max_entries`; lazy expiry (on access and on writes), no background task.

    Values are stored as JSON text, so callers get a fresh copy on every `get` and see exactly what a
    networked backend would return (tuples come back as lists; a value that is not JSON fails at `set`, not
    later in production with Redis).
    """

    name = "memory"

    def __init__(
        self,
        max_entries: int = 10_000,
        default_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if default_ttl <= 0:
            raise ValueError(f"default_ttl must be positive, got {default_ttl}")
        self.max_entries = max_entries
        self.default_ttl = default_ttl
        self._clock = clock
        # key -> (expires_at, JSON text); order is recency, least recently used first.
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        # (expires_at, key) min-heap so expired entries are found without scanning; items for keys since
        # overwritten or deleted are stale and skipped when popped.
        self._expiry: list[tuple[float, str]] = []
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0

    async def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] <= self._clock():
            del self._entries[key]
            self._expirations += 1
            entry = None
        if entry is None:
            self._misses += 1
            return None
        self._hits += 1
        self._entries.move_to_end(key)
        return loads(entry[1])

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        text = _dumps(value)
        ttl = self.default_ttl if ttl is None else ttl
        if ttl <= 0:
            # Already expired: storing it would only make a later get miss.
            self._entries.pop(key, None)
            return
        now = self._clock()
        self._drop_expired(now)
        if key in self._entries:
            self._entries.move_to_end(key)
        elif len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
            self._evictions += 1
        expires_at = now + ttl
        self._entries[key] = (expires_at, text)
        heapq.heappush(self._expiry, (expires_at, key))
        self._compact_expiry()

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def clear(self) -> int:
        removed = len(self._entries)
        self._entries.clear()
        self._expiry.clear()
        return removed

    async def stats(self) -> dict[str, Any]:
        self._drop_expired(self._clock())
        return {
            "backend": self.name,
            "entries": len(self._entries),
            "max_entries": self.max_entries,
            "default_ttl": self.default_ttl,
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "expirations": self._expirations,
        }

    def _drop_expired(self, now: float) -> None:
        """Remove every entry whose time has come, cheapest first, so capacity goes to live entries."""
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiry)
            entry = self._entries.get(key)
            if entry is not None and entry[0] == expires_at:
                del self._entries[key]
                self._expirations += 1

    def _compact_expiry(self) -> None:
        # Overwrites and deletes leave stale heap items behind; rebuild once they outnumber live entries.
        if len(self._expiry) > 2 * len(self._entries) + 64:
            self._expiry = [(expires_at, key) for key, (expires_at, _) in self._entries.items()]
            heapq.heapify(self._expiry)


def memory_cache_from_options(options: Mapping[str, Any]) -> MemoryCacheBackend:
    """`[plugins.memory]`: `max_entries` (default 10000) and `default_ttl` seconds (default 300)."""
    return MemoryCacheBackend(
        max_entries=int(options.get("max_entries", 10_000)),
        default_ttl=float(options.get("default_ttl", 300.0)),
    )


@hookimpl
def ccproxy_register_cache_backends(register: RegisterCacheBackend) -> None:
    register(MemoryCacheBackend.name, memory_cache_from_options)
