"""RedisLimitStore: the client keys' rpm and tpm windows and budgets, shared by every worker and instance.

Per window name (`rpm:key_ab12cd34`, `tpm:key_ab12cd34`): the sorted set `<prefix>quota:<name>` holds one member per
event of the last minute (score: the server's time; member: `<amount>:<unique id>`) and the string
`<prefix>quota:<name>:total` their sum, kept by the same Lua scripts that trim the set, so a fleet keeps one exact
sliding window like the in-process store's. Per budget period (`budget:key_ab12cd34:2026-11`): a float under
`<prefix>quota:<name>`, expiring when the period ends.

Two scripts do all the counting: CHECK answers a request's limits (`check`; `take` and `over` are it with one
window), RECORD adds what a request used (`record`; `add` and `spend` are it with one amount). Each is one round
trip; `spent` is a GET. What `record` adds must not block (an observer calls it): it is sent in the background, and
`flush()` waits for what is still on its way. While
Redis is unavailable every operation falls back to this process's own counters (per-process limits), as the upstream
limiter does.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
from collections.abc import Awaitable, Callable
from typing import Literal

from redis.asyncio import Redis

from ccproxy.quota import WINDOW_SECONDS, LimitStore, MemoryLimitStore, Refusal
from ccproxy_redis.clock import NOW, now_argument
from ccproxy_redis.link import LuaScript, RedisLink, Unavailable

# Shared by the window scripts: a window is a sorted set (`set`) and its sum (`total`).
_WINDOWS = """
local function trim(set, total, clock, window)
  local horizon = clock - window
  local expired = redis.call('ZRANGEBYSCORE', set, '-inf', horizon)
  if #expired > 0 then
    local freed = 0
    for _, member in ipairs(expired) do freed = freed + tonumber(string.match(member, '^([^:]+):')) end
    redis.call('ZREMRANGEBYSCORE', set, '-inf', horizon)
    redis.call('INCRBYFLOAT', total, -freed)
  end
  return horizon
end
local function count(set, total, clock, amount, member, window)
  local ttl = math.ceil(window * 1000) + 1000
  redis.call('ZADD', set, string.format('%.6f', clock), amount .. ':' .. member)
  redis.call('INCRBYFLOAT', total, amount)
  redis.call('PEXPIRE', set, ttl)
  redis.call('PEXPIRE', total, ttl)
end
local function oldest_leaves(set, horizon)
  local oldest = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
  return string.format('%.6f', math.max(tonumber(oldest[2]) - horizon, 0))
end
local function over(set, total, clock, window, limit)
  local horizon = trim(set, total, clock, window)
  if redis.call('ZCARD', set) == 0 or tonumber(redis.call('GET', total) or '0') < limit then return nil end
  return oldest_leaves(set, horizon)
end
local function take(set, total, clock, window, limit, member)
  local horizon = trim(set, total, clock, window)
  if redis.call('ZCARD', set) >= limit then return oldest_leaves(set, horizon) end
  count(set, total, clock, 1, member, window)
  return nil
end
"""


def _window_script(body: str) -> LuaScript:
    """A script that reads the clock and works on windows (the functions above)."""
    return LuaScript(NOW + _WINDOWS + body)


# LimitStore.check in one round trip. KEYS: the tpm set and total, the budget counter, the rpm set and total.
# ARGV: now, window, tpm limit (0: none), budget limit ('': none), rpm limit (0: none), member.
# Returns {} when every limit holds (the rpm window then counts the request), else {limit, value}.
CHECK = _window_script(
    """
local clock, window = now(), tonumber(ARGV[2])
local tpm, budget, rpm = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
if tpm > 0 then
  local wait = over(KEYS[1], KEYS[2], clock, window, tpm)
  if wait then return {'tpm', wait} end
end
if budget ~= '' then
  local spent = redis.call('GET', KEYS[3]) or '0'
  if tonumber(spent) >= tonumber(budget) then return {'budget', spent} end
end
if rpm > 0 then
  local wait = take(KEYS[4], KEYS[5], clock, window, rpm, ARGV[6])
  if wait then return {'rpm', wait} end
end
return {}
"""
)

# LimitStore.record in one round trip. KEYS: the tokens set and total, the budget counter. ARGV: now, window, tokens
# ('': none), member, cost ('': none), the epoch second the budget's period ends.
RECORD = _window_script(
    """
if ARGV[3] ~= '' then
  local clock, window = now(), tonumber(ARGV[2])
  trim(KEYS[1], KEYS[2], clock, window)
  count(KEYS[1], KEYS[2], clock, ARGV[3], ARGV[4], window)
end
if ARGV[5] ~= '' then
  redis.call('INCRBYFLOAT', KEYS[3], ARGV[5])
  redis.call('EXPIREAT', KEYS[3], ARGV[6])
end
return ''
"""
)

_LIMITS: dict[str, Literal["tpm", "budget", "rpm"]] = {"tpm": "tpm", "budget": "budget", "rpm": "rpm"}


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
        refusal = await self.check(now, rpm=(name, limit), window=window)
        return None if refusal is None else refusal.value

    async def over(self, name: str, limit: float, now: float, window: float = WINDOW_SECONDS) -> float | None:
        refusal = await self.check(now, tpm=(name, limit), window=window)
        return None if refusal is None else refusal.value

    def add(self, name: str, amount: float, now: float, window: float = WINDOW_SECONDS) -> None:
        self.record(now, tokens=(name, amount), window=window)

    def spend(self, name: str, amount: float, expires_at: float) -> None:
        self.record(0.0, cost=(name, amount, expires_at))  # `now` is read only for tokens

    async def check(
        self,
        now: float,
        *,
        tpm: tuple[str, float] | None = None,
        budget: tuple[str, float] | None = None,
        rpm: tuple[str, int] | None = None,
        window: float = WINDOW_SECONDS,
    ) -> Refusal | None:
        """The checks in one script (one round trip), in LimitStore.check's order; `take` and `over` are this with
        one window."""
        unused = self.prefix + "unused"  # a key name for a limit the key does not have (never touched)
        tpm_keys = self._window(tpm[0]) if tpm is not None else (unused, unused)
        rpm_keys = self._window(rpm[0]) if rpm is not None else (unused, unused)
        keys = (*tpm_keys, self.prefix + budget[0] if budget is not None else unused, *rpm_keys)
        args = (
            now_argument(now, self.server_clock),
            window,
            tpm[1] if tpm is not None else 0,
            _number(budget[1]) if budget is not None else "",
            rpm[1] if rpm is not None else 0,
            self._member(),
        )
        try:
            answer = await self.link.run(lambda client: CHECK(client, keys, args))
        except Unavailable:
            return await self.fallback.check(now, tpm=tpm, budget=budget, rpm=rpm, window=window)
        if not answer:
            return None
        limit, value = (part.decode() if isinstance(part, bytes) else str(part) for part in answer)
        return Refusal(_LIMITS[limit], float(value))

    def record(
        self,
        now: float,
        *,
        tokens: tuple[str, float] | None = None,
        cost: tuple[str, float, float] | None = None,
        window: float = WINDOW_SECONDS,
    ) -> None:
        """The tokens and the cost in one script, sent in the background; `add` and `spend` are this with one of
        them."""
        unused = self.prefix + "unused"  # a key name for what this request did not use (never touched)
        window_set, window_total = self._window(tokens[0]) if tokens is not None else (unused, unused)
        keys = (window_set, window_total, self.prefix + cost[0] if cost is not None else unused)
        args = (
            now_argument(now, self.server_clock),
            window,
            _number(tokens[1]) if tokens is not None else "",
            self._member(),
            _number(cost[1]) if cost is not None else "",
            math.ceil(cost[2]) if cost is not None else 0,
        )

        def fallback() -> None:
            self.fallback.record(now, tokens=tokens, cost=cost, window=window)

        self._send(lambda client: RECORD(client, keys, args), fallback)

    async def spent(self, name: str) -> float:
        try:
            value = await self.link.run(lambda client: client.get(self.prefix + name))
        except Unavailable:
            return await self.fallback.spent(name)
        return float(value) if value is not None else 0.0

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


def _number(amount: float) -> str:
    """An amount as Redis (INCRBYFLOAT) and Lua (tonumber) read it: its shortest exact text, exponent and all."""
    return repr(float(amount))
