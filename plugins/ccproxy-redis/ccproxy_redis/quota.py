"""RedisLimitStore: the client keys' rpm and tpm windows and budgets, shared by every worker and instance.

Per window name (`rpm:key_ab12cd34`, `tpm:key_ab12cd34`): the sorted set `<prefix>quota:<name>` holds one member per
event of the last minute (score: the server's time; member: `<amount>:<unique id>`) and the string
`<prefix>quota:<name>:total` their sum, kept by the same Lua scripts that trim the set, so a fleet keeps one exact
sliding window like the in-process store's. Per budget period (`budget:key_ab12cd34:2026-11`): a float under
`<prefix>quota:<name>`, expiring when the period ends.

The checks (`take`, `over`, `spent`) are one round trip each. Adding a finished request's tokens and cost must not
block (an observer calls it): it is sent in the background, and `flush()` waits for what is still on its way. While
Redis is unavailable every operation falls back to this process's own counters (per-process limits), as the upstream
limiter does.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from ccproxy.quota import WINDOW_SECONDS, LimitStore, MemoryLimitStore
from ccproxy_redis.clock import NOW, now_argument
from ccproxy_redis.link import LuaScript, RedisLink, Unavailable

# Shared by the window scripts (KEYS: the set, its total): drop the events that left the window ending at `clock`.
_TRIM = """
local function trim(clock, window)
  local horizon = clock - window
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon)
  if #expired > 0 then
    local freed = 0
    for _, member in ipairs(expired) do freed = freed + tonumber(string.match(member, '^([^:]+):')) end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
    redis.call('INCRBYFLOAT', KEYS[2], -freed)
  end
  return horizon
end
local function count(clock, amount, member, window)
  local ttl = math.ceil(window * 1000) + 1000
  redis.call('ZADD', KEYS[1], string.format('%.6f', clock), amount .. ':' .. member)
  redis.call('INCRBYFLOAT', KEYS[2], amount)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
local function oldest_leaves(horizon)
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return string.format('%.6f', math.max(tonumber(oldest[2]) - horizon, 0))
end
"""


def _window_script(body: str) -> LuaScript:
    """A script over one window (KEYS: its set, its total) that reads the clock and may trim, count and answer."""
    return LuaScript(NOW + _TRIM + body)


# ARGV: now, limit, window, member. Counts one event when fewer than `limit` are in the window: '' (counted), else
# the seconds until the oldest leaves.
TAKE = _window_script(
    """
local clock, limit, window = now(), tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon = trim(clock, window)
if redis.call('ZCARD', KEYS[1]) >= limit then return oldest_leaves(horizon) end
count(clock, 1, ARGV[4], window)
return ''
"""
)

# ARGV: now, limit, window. '' while the window's total is below `limit`, else the seconds until its oldest leaves.
OVER = _window_script(
    """
local clock, limit, window = now(), tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon = trim(clock, window)
if redis.call('ZCARD', KEYS[1]) == 0 or tonumber(redis.call('GET', KEYS[2]) or '0') < limit then return '' end
return oldest_leaves(horizon)
"""
)

# ARGV: now, amount, window, member. Adds `amount` to the window.
ADD = _window_script(
    """
local clock, window = now(), tonumber(ARGV[3])
trim(clock, window)
count(clock, ARGV[2], ARGV[4], window)
return ''
"""
)

# KEYS: the period's counter. ARGV: amount, the epoch second the period ends.
SPEND = LuaScript(
    """
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return ''
"""
)


class RedisLimitStore(LimitStore):
    """The key limits' counters in Redis (see the module docstring). `server_clock=False` takes the callers' `now`
    instead of Redis's TIME: only for tests on a fake clock, never for several processes."""

    def __init__(self, link: RedisLink, *, server_clock: bool = True) -> None:
        self.link = link
        self.server_clock = server_clock
        self.prefix = f"{link.options.key_prefix}quota:"
        self.fallback = MemoryLimitStore()
        # Window members must be unique across the fleet: this instance's random tag and a counter.
        self._tag = os.urandom(6).hex()
        self._ids = itertools.count()
        self._sending: set[asyncio.Task[None]] = set()

    def _window(self, name: str) -> tuple[str, str]:
        key = self.prefix + name
        return key, key + ":total"

    def _member(self) -> str:
        return f"{self._tag}-{next(self._ids)}"

    async def take(self, name: str, limit: int, now: float, window: float = WINDOW_SECONDS) -> float | None:
        args = (now_argument(now, self.server_clock), limit, window, self._member())
        try:
            wait = await self.link.run(lambda client: TAKE(client, self._window(name), args))
        except Unavailable:
            return await self.fallback.take(name, limit, now, window)
        return _seconds(wait)

    async def over(self, name: str, limit: float, now: float, window: float = WINDOW_SECONDS) -> float | None:
        args = (now_argument(now, self.server_clock), limit, window)
        try:
            wait = await self.link.run(lambda client: OVER(client, self._window(name), args))
        except Unavailable:
            return await self.fallback.over(name, limit, now, window)
        return _seconds(wait)

    def add(self, name: str, amount: float, now: float, window: float = WINDOW_SECONDS) -> None:
        args = (now_argument(now, self.server_clock), _number(amount), window, self._member())
        self._send(
            lambda client: ADD(client, self._window(name), args),
            lambda: self.fallback.add(name, amount, now, window),
        )

    async def spent(self, name: str) -> float:
        try:
            value = await self.link.run(lambda client: client.get(self.prefix + name))
        except Unavailable:
            return await self.fallback.spent(name)
        return float(value) if value is not None else 0.0

    def spend(self, name: str, amount: float, expires_at: float) -> None:
        args = (_number(amount), math.ceil(expires_at))
        self._send(
            lambda client: SPEND(client, (self.prefix + name,), args),
            lambda: self.fallback.spend(name, amount, expires_at),
        )

    async def flush(self) -> None:
        """Wait until every addition sent in the background has reached Redis (or fallen back)."""
        while self._sending:
            await asyncio.gather(*self._sending)

    def _send(self, operation: Callable[[Redis], Awaitable[object]], fallback: Callable[[], None]) -> None:
        """Run `operation` in the background on the running loop; `fallback` instead when Redis is unavailable or
        no loop runs here."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            fallback()
            return
        task = loop.create_task(self._run(operation, fallback))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _run(self, operation: Callable[[Redis], Awaitable[object]], fallback: Callable[[], None]) -> None:
        try:
            await self.link.run(operation)
        except Unavailable:
            fallback()


def _seconds(wait: bytes | str) -> float | None:
    """A script's answer: '' (within the limit) or the seconds to wait."""
    text = wait.decode() if isinstance(wait, bytes) else wait
    return float(text) if text else None


def _number(amount: float) -> str:
    """An amount as Redis (INCRBYFLOAT) and Lua (tonumber) read it: its shortest exact text, exponent and all."""
    return repr(float(amount))
