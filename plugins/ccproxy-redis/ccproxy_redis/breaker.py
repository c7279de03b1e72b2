"""RedisBreakerState: circuit breakers shared by every process, with the in-memory semantics, atomically in Lua.

Per backend, the hash `<prefix>breaker:<name>` holds `failures` (consecutive) and `opened_at` (server time); the key
`<prefix>breaker-trial:<name>` is the half-open trial claim, set with NX and an expiry so that a trial whose holder
died (a killed worker) stops wedging the circuit after `trial_ttl` seconds. While Redis is unavailable the
process falls back to its own in-memory circuits.
"""

from __future__ import annotations

from ccproxy.upstream import Admission, BreakerState, InMemoryBreakerState
from ccproxy.upstream.breaker import ADMITTED, TRIAL
from ccproxy_redis.clock import NOW, now_argument
from ccproxy_redis.link import LuaScript, RedisLink, Unavailable

# A circuit nobody touched for a day is forgotten (a renamed backend leaves no garbage behind).
CIRCUIT_TTL = 86_400

# ARGV: now, cooldown, trial claim ms. Returns {allowed, trial, seconds left of the cooldown or "-1", clean}; clean: no
# failure counted (the circuit is closed and a success would change nothing).
ADMIT = LuaScript(
    NOW
    + """
local circuit = redis.call('HMGET', KEYS[1], 'failures', 'opened_at')
if not circuit[2] then return {1, 0, '-1', circuit[1] and 0 or 1} end
local left = tonumber(circuit[2]) + tonumber(ARGV[2]) - now()
if left > 0 then return {0, 0, string.format('%.6f', left), 0} end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return {1, 1, '-1', 0} end
return {0, 0, '-1', 0}
"""
)

# ARGV: now, failed (0/1), trial (0/1), threshold, circuit ttl. A success closes the circuit and clears the count; a
# failure counts, and opens it at `threshold` consecutive failures, or at once when it was the trial.
RECORD = LuaScript(
    NOW
    + """
if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
  return 0
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local closed = redis.call('HEXISTS', KEYS[1], 'opened_at') == 0
if ARGV[3] == '1' or (closed and failures >= tonumber(ARGV[4])) then
  redis.call('HSET', KEYS[1], 'opened_at', string.format('%.6f', now()))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return failures
"""
)


class RedisBreakerState(BreakerState):
    """Circuits in Redis (see the module docstring). `server_clock=False` takes the breaker's `now` instead of
    Redis's TIME: only for tests on a fake clock, never for several processes (their monotonic clocks differ)."""

    def __init__(self, link: RedisLink, *, trial_ttl: float = 60.0, server_clock: bool = True) -> None:
        self.link = link
        self.trial_ms = max(1, round(trial_ttl * 1000))
        self.server_clock = server_clock
        self.prefix = link.options.key_prefix
        self.fallback = InMemoryBreakerState()
        # Per circuit: whether this process last saw it with no failure counted. A success recorded then changes
        # nothing and is not sent: half the round trips of a healthy backend. A failure another process records
        # meanwhile is concurrent with this request, so ordering the success before it is as true as after.
        self._clean: dict[str, bool] = {}

    def _keys(self, key: str) -> tuple[str, str]:
        return f"{self.prefix}breaker:{key}", f"{self.prefix}breaker-trial:{key}"

    async def admit(self, key: str, now: float, cooldown: float) -> Admission:
        args = (now_argument(now, self.server_clock), cooldown, self.trial_ms)
        try:
            allowed, trial, left, clean = await self.link.run(lambda client: ADMIT(client, self._keys(key), args))
        except Unavailable:
            return await self.fallback.admit(key, now, cooldown)
        self._clean[key] = bool(clean)
        if allowed:
            return TRIAL if trial else ADMITTED
        seconds = float(left)
        return Admission(False, retry_after=None if seconds < 0 else seconds)

    async def record(self, key: str, *, failed: bool, trial: bool, now: float, threshold: int) -> None:
        if not (failed or trial) and self._clean.get(key):
            return
        self._clean[key] = not failed
        args = (now_argument(now, self.server_clock), int(failed), int(trial), threshold, CIRCUIT_TTL)
        try:
            await self.link.run(lambda client: RECORD(client, self._keys(key), args))
        except Unavailable:
            self._clean.pop(key, None)
            await self.fallback.record(key, failed=failed, trial=trial, now=now, threshold=threshold)

    async def release(self, key: str) -> None:
        try:
            await self.link.run(lambda client: client.delete(self._keys(key)[1]))
        except Unavailable:
            await self.fallback.release(key)
