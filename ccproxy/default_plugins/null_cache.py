"""The cache backend "none" (CACHE_BACKEND=none): nothing is stored, every lookup misses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccproxy.hookspecs import RegisterCacheBackend, hookimpl
from ccproxy.interfaces import CacheBackend


class NullCacheBackend(CacheBackend):
    """Stores nothing: for deployments that want no cache at all (count_tokens is then counted every time)."""

    name = "none"

    def __init__(self) -> None:
        self._misses = 0

    async def get(self, key: str) -> Any | None:
        self._misses += 1
        return None

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        return None

    async def delete(self, key: str) -> None:
        return None

    async def clear(self) -> int:
        return 0

    async def stats(self) -> dict[str, Any]:
        return {"backend": self.name, "entries": 0, "hits": 0, "misses": self._misses, "evictions": 0, "healthy": True}


def null_cache_from_options(options: Mapping[str, Any]) -> NullCacheBackend:
    return NullCacheBackend()


@hookimpl
def ccproxy_register_cache_backends(register: RegisterCacheBackend) -> None:
    register(NullCacheBackend.name, null_cache_from_options)
