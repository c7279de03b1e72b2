"""RedisLimiterState: rate-limit windows and the adaptive level shared by every process, atomically in Lua.

Per backend: the sorted set `<prefix>limiter:window:<name>` holds one member per admitted request of the last 60 s
(score: its server time; member: `<tokens>:<unique id>`), the string `<prefix>limiter:tokens:<name>` their token sum,
and the hash `<prefix>limiter:level:<name>` the adaptive level and success streak (absent = the full rate).

Why a sorted set rather than fixed sub-window counters: it is the exact sliding window the in-memory state keeps, so
a fleet behaves like one process — never a burst of twice the limit across a bucket boundary, and the wait it
answers is exact (when the oldest blocking request leaves the window), not rounded to a bucket. Its size is bounded
by the requests admitted in a minute (at most `rpm`), and trimming is O(log n) per removed entry.

While Redis is unavailable the process falls back to its own in-memory windows (per-process limits).
"""

from __future__ import annotations

import itertools
import os

from ccproxy.upstream import InMemoryLimiterState, LimiterState, Outcome
from ccproxy.upstream.limiter import FULL_LEVEL, LEVEL_AFTER_429, SUCCESSES_PER_LEVEL, WINDOW
from ccproxy_redis.clock import NOW, now_argument
from ccproxy_redis.link import LuaScript, RedisLink, Unavailable

# A reduced level nobody touched for a day is forgotten: back to the full rate.
LEVEL_TTL = 86_400

# KEYS: window, tokens, level. ARGV: now, tokens, rpm, tpm, member id, window seconds, full level.
# Returns {"0" when admitted (and counted), else the seconds until the request could fit; the level}.
ACQUIRE = LuaScript(
    NOW
    + """
local clock = now()
local tokens, rpm, tpm = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local window, full = tonumber(ARGV[6]), tonumber(ARGV[7])
local horizon = clock - window
local function tokens_of(member) return tonumber(string.match(member, '^(%d+):')) end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', horizon)
if #expired > 0 then
  local freed = 0
  for _, member in ipairs(expired) do freed = freed + tokens_of(member) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', horizon)
  if freed > 0 then redis.call('DECRBY', KEYS[2], freed) end
end

local level = tonumber(redis.call('HGET', KEYS[3], 'level') or full)
local count = redis.call('ZCARD', KEYS[1])
local wait = 0
if rpm > 0 then
  local allowed = math.max(1, math.floor(rpm * level / full))
  if count >= allowed then
    local blocking = redis.call('ZRANGE', KEYS[1], count - allowed, count - allowed, 'WITHSCORES')
    wait = tonumber(blocking[2]) - horizon
  end
end
if tpm > 0 then
  local allowed = math.max(1, math.floor(tpm * level / full))
  local room = math.max(0, allowed - tokens)
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used > room then
    local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      used = used - tokens_of(entries[i])
      if used <= room then
        wait = math.max(wait, tonumber(entries[i + 1]) - horizon)
        break
      end
    end
  end
end
if wait > 0 then return {string.format('%.6f', wait), level} end

local ttl = math.ceil(window * 1000) + 1000
redis.call('ZADD', KEYS[1], string.format('%.6f', clock), tokens .. ':' .. ARGV[5])
redis.call('INCRBY', KEYS[2], tokens)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {'0', level}
"""
)

# KEYS: level. ARGV: now (unused), outcome ("answered" | "throttled" | "failed"), full level, level after a 429,
# successes per level, ttl. A 429 cuts the level; below the full rate, each run of successes raises it by one.
# Returns the level.
FEEDBACK = LuaScript(
    """
local full = tonumber(ARGV[3])
if ARGV[2] == 'throttled' then
  redis.call('HSET', KEYS[1], 'level', ARGV[4], 'streak', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return tonumber(ARGV[4])
end
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or full)
if level >= full then return level end
if ARGV[2] == 'failed' then
  redis.call('HSET', KEYS[1], 'streak', 0)
elseif redis.call('HINCRBY', KEYS[1], 'streak', 1) >= tonumber(ARGV[5]) then
  level = level + 1
  if level >= full then
    redis.call('DEL', KEYS[1])
    return level
  end
  redis.call('HSET', KEYS[1], 'level', level, 'streak', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return level
"""
)


class RedisLimiterState(LimiterState):
    """Windows in Redis (see the module docstring). `server_clock=False` takes the limiter's `now` instead of
    Redis's TIME: only for tests on a fake clock, never for several processes (their monotonic clocks differ)."""

    def __init__(self, link: RedisLink, *, server_clock: bool = True) -> None:
        self.link = link
        self.server_clock = server_clock
        self.prefix = link.options.key_prefix
        self.fallback = InMemoryLimiterState()
        # Window members must be unique across the fleet: this instance's random tag and a counter.
        self._tag = os.urandom(6).hex()
        self._ids = itertools.count()
        # Per backend: whether this process last saw the full rate. Feedback other than a 429 then changes nothing
        # and is not sent: half the round trips of a healthy backend. A 429 another process reports meanwhile is
        # concurrent with this request, so ordering this feedback before it is as true as after.
        self._full: dict[str, bool] = {}

    def _keys(self, key: str) -> tuple[str, str, str]:
        prefix = self.prefix
        return f"{prefix}limiter:window:{key}", f"{prefix}limiter:tokens:{key}", f"{prefix}limiter:level:{key}"

    async def acquire(self, key: str, now: float, tokens: int, rpm: int, tpm: int) -> float:
        member = f"{self._tag}-{next(self._ids)}"
        args = (now_argument(now, self.server_clock), max(0, int(tokens)), rpm, tpm, member, WINDOW, FULL_LEVEL)
        try:
            wait, level = await self.link.run(lambda client: ACQUIRE(client, self._keys(key), args))
        except Unavailable:
            return await self.fallback.acquire(key, now, tokens, rpm, tpm)
        self._full[key] = level >= FULL_LEVEL
        return float(wait)

    async def feedback(self, key: str, outcome: Outcome) -> None:
        if outcome is not Outcome.THROTTLED and self._full.get(key):
            return
        args = ("", outcome.value, FULL_LEVEL, LEVEL_AFTER_429, SUCCESSES_PER_LEVEL, LEVEL_TTL)
        try:
            level = await self.link.run(lambda client: FEEDBACK(client, (self._keys(key)[2],), args))
        except Unavailable:
            self._full.pop(key, None)
            await self.fallback.feedback(key, outcome)
            return
        self._full[key] = level >= FULL_LEVEL
