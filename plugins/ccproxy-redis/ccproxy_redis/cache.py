"""RedisCacheBackend: the cache in Redis, shared by every worker and instance; a miss whenever Redis is unavailable.

Keys live under `<key_prefix>cache:`; the fleet-wide hit and miss counters in the hash `<key_prefix>stats:cache`.
`clear()` removes only this prefix's cache keys (SCAN + UNLINK, never FLUSHDB): the limiter and breaker states and
anything else in the database stay.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ccproxy import CacheBackend
from ccproxy.upstream import UpstreamStates
from ccproxy_redis.breaker import RedisBreakerState
from ccproxy_redis.limiter import RedisLimiterState
from ccproxy_redis.link import LuaScript, RedisLink, Unavailable
from ccproxy_redis.options import RedisOptions
from ccproxy_redis.quota import RedisLimitStore
from ccproxy_redis.usage import RedisUsage

SCAN_BATCH = 500

# GET that counts a hit or a miss for the whole fleet in the same round trip.
GET = LuaScript(
    """
local value = redis.call('GET', KEYS[1])
redis.call('HINCRBY', KEYS[2], value and 'hits' or 'misses', 1)
return value
"""
)


def encode(value: Any) -> bytes:
    """Compact JSON; a string with a lone surrogate (some backends cut emoji in two) is written escaped."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")  # still TypeError for what is not JSON


def decode(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)  # lone surrogate escapes, which orjson refuses


def match_pattern(prefix: str) -> str:
    """A SCAN MATCH pattern for every key starting with `prefix`, its glob characters escaped."""
    escaped = "".join(f"\\{char}" if char in "*?[]\\" else char for char in prefix)
    return f"{escaped}*"


class RedisCacheBackend(CacheBackend):
    """The cache backend "redis" (see the module docstring); `shared_states()` puts the upstream limits and breakers
    in Redis, `shared_limit_store()` the client keys' rpm, tpm and budgets, `shared_usage_store()` GET /v1/usage's
    totals."""

    name = "redis"
    shared = True

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self.link = RedisLink(options)
        self.prefix = f"{options.key_prefix}cache:"
        self.stats_key = f"{options.key_prefix}stats:cache"
        self._states = UpstreamStates(
            breaker=RedisBreakerState(self.link, trial_ttl=options.breaker_trial_ttl),
            limiter=RedisLimiterState(self.link),
        )
        self._limits = RedisLimitStore(self.link)
        self._usage = RedisUsage(self.link)

    async def open(self) -> None:
        await self.link.open()

    async def close(self) -> None:
        await self.link.close()

    def shared_states(self) -> UpstreamStates:
        return self._states

    def shared_limit_store(self) -> RedisLimitStore:
        return self._limits

    def shared_usage_store(self) -> RedisUsage:
        return self._usage

    async def ready(self) -> str | None:
        """GET /ready: a PING now (or at once "unreachable" while the link knows Redis is down)."""
        try:
            await self.link.run(lambda client: client.ping())
        except Unavailable:
            detail = f" ({self.link.last_error})" if self.link.last_error else ""
            return f"Redis at {self.link.where} is unreachable{detail}"
        return None

    async def get(self, key: str) -> Any | None:
        try:
            data = await self.link.run(lambda client: self._get(client, self.prefix + key))
        except Unavailable:
            return None
        if data is None:
            return None
        try:
            return decode(data)
        except ValueError:  # not written by ccproxy: a miss, never an error for the request
            return None

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        data = encode(value)
        ttl = self.options.default_ttl if ttl is None else ttl
        if ttl <= 0:
            await self.delete(key)  # already expired: storing it would only make a later get miss
            return
        milliseconds = max(1, round(ttl * 1000))
        with contextlib.suppress(Unavailable):  # not stored: a later get misses
            await self.link.run(lambda client: client.set(self.prefix + key, data, px=milliseconds))

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        """SET NX PX: atomic for the whole fleet; True (go ahead alone) while Redis is unavailable."""
        data = encode(value)
        milliseconds = max(1, round(ttl * 1000))
        try:
            stored = await self.link.run(lambda client: client.set(self.prefix + key, data, px=milliseconds, nx=True))
        except Unavailable:
            return True
        return bool(stored)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(Unavailable):  # entries expire by their TTL anyway
            await self.link.run(lambda client: client.unlink(self.prefix + key))

    async def clear(self) -> int:
        """Remove this prefix's cache entries; 0 when Redis is unavailable."""
        try:
            return await self.link.run(self._unlink_all)
        except Unavailable:
            return 0

    async def stats(self) -> dict[str, Any]:
        """Entries (a count of this prefix's keys), fleet-wide hits and misses, Redis's own evictions and memory,
        and the link's health; the counts are None while Redis is unavailable."""
        try:
            counted = await self.link.run(self._server_stats)
        except Unavailable:
            counted = dict.fromkeys(("entries", "hits", "misses", "evictions", "bytes"))
        return {
            "backend": self.name,
            **counted,
            "key_prefix": self.options.key_prefix,
            "default_ttl": self.options.default_ttl,
            "healthy": self.link.up,
            "redis": self.link.health(),
        }

    async def _get(self, client: Redis, key: str) -> bytes | str | None:
        try:
            data: bytes | str | None = await GET(client, (key, self.stats_key), ())
        except ResponseError:
            # Redis refuses scripts that may write while it is out of memory; the read alone still works (uncounted).
            data = await client.get(key)
        return data

    async def _keys(self, client: Redis) -> list[list[bytes | str]]:
        """This prefix's cache keys, in SCAN batches."""
        batches: list[list[bytes | str]] = []
        cursor = 0
        while True:
            cursor, keys = await client.scan(cursor, match=match_pattern(self.prefix), count=SCAN_BATCH)
            if keys:
                batches.append(keys)
            if cursor == 0:
                return batches

    async def _unlink_all(self, client: Redis) -> int:
        removed = 0
        for batch in await self._keys(client):
            removed += await client.unlink(*batch)
        return removed

    async def _server_stats(self, client: Redis) -> dict[str, Any]:
        entries = sum(len(batch) for batch in await self._keys(client))
        hits, misses = await client.hmget(self.stats_key, ["hits", "misses"])
        server = await _info(client)
        return {
            "entries": entries,
            "hits": int(hits or 0),
            "misses": int(misses or 0),
            # Redis evicts under maxmemory for the whole server, not per prefix: its count is the best there is.
            "evictions": server.get("evicted_keys"),
            "bytes": server.get("used_memory"),
            "max_bytes": server.get("maxmemory"),
            "maxmemory_policy": server.get("maxmemory_policy"),
        }


async def _info(client: Redis) -> dict[str, Any]:
    """INFO stats and memory; empty where the server refuses INFO (some managed services rename it)."""
    found: dict[str, Any] = {}
    for section in ("stats", "memory"):
        with contextlib.suppress(ResponseError):
            found.update(await client.info(section))
    return found
