"""The clock the state scripts read: Redis's own TIME, so that instances whose clocks disagree share one timeline."""

from __future__ import annotations

# Prepended to every state script: `now()` is ARGV[1] when the caller passed its own time (tests on a fake clock,
# one process), else the server's TIME. Effects replication (the default since Redis 5, the only mode since 7)
# lets a script write after reading TIME.
NOW = """
local function now()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""


def now_argument(now: float, server_clock: bool) -> str:
    """ARGV[1] of a state script: empty to use the server's clock, else the caller's `now`."""
    return "" if server_clock else f"{now:.6f}"
