"""RedisUsage: GET /v1/usage's totals summed in Redis for every worker and instance that shares it.

Per day (UTC) one hash, `<prefix>usage:<YYYY-MM-DD>`, field `["<counter>","<key id>","<model>"]` (JSON, ASCII: a
key id or model may hold any text), value the fleet's sum, kept KEEP_DAYS days after the day ends.
`<prefix>usage:since` holds when the first process published.

Each process publishes what it summed since its last publish (the difference against what it last sent) once a
second, with one Lua script that adds every amount under a marker key unique to that publish
(`<prefix>usage:sent:<instance tag>:<number>`, kept an hour): sent again after an error that left it unknown whether
Redis applied it, the same publish is not counted twice. What could not be sent waits, merged with what comes after,
until Redis answers again; meanwhile GET /v1/usage answers with the process's own sums and says so. (A publish whose
answer was lost and that is sent again more than an hour later, after a long partition, would count twice; what a
process could not send when it stops is lost, and logged.)
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import time
from itertools import count
from math import isfinite

from redis.asyncio import Redis

from ccproxy.usage import COUNTERS, KEEP_DAYS, Row, RowKey, SharedUnavailable, SharedUsage, UsageTotals, add_rows
from ccproxy_redis.link import LuaScript, RedisLink, Unavailable

log = logging.getLogger("ccproxy.redis")

SENT_MARKER_SECONDS = 3600  # how long a publish is remembered as applied (a resend comes within seconds)
DAY_SECONDS = 86400

# KEYS: the publish's marker, `since`, then the day hashes. ARGV: the marker's ttl, since (epoch seconds), the
# hashes' expiry (epoch seconds, one per hash, in KEYS order), then the additions as one JSON array of
# [hash number, field, amount] (one argument: redis-py packs each argument in Python, ~6 µs apiece).
APPLY = LuaScript(
    """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'NX')
local hashes = #KEYS - 2
for _, addition in ipairs(cjson.decode(ARGV[hashes + 3])) do
  redis.call('HINCRBYFLOAT', KEYS[addition[1] + 2], addition[2], addition[3])
end
-- after the additions: EXPIREAT on a hash that does not exist yet does nothing
for i = 1, hashes do redis.call('EXPIREAT', KEYS[i + 2], ARGV[i + 2]) end
return 1
"""
)
Publish = tuple[int, dict[RowKey, Row]]


class RedisUsage(SharedUsage):
    """The usage totals in Redis (see the module docstring)."""

    scope = "fleet"

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.prefix = f"{link.options.key_prefix}usage:"
        self._tag = os.urandom(6).hex()
        self._numbers = count()
        self._sent: dict[RowKey, Row] = {}  # per row: what this process has handed to a publish so far
        self._unsent: dict[RowKey, Row] = {}  # differences not yet handed to a publish
        self._in_doubt: Publish | None = None  # a publish that failed: sent again, under the same number
        self._since: float | None = None

    async def publish(self, totals: UsageTotals) -> None:
        self._since = totals.since if self._since is None else self._since
        self._take_differences(totals)
        if self._in_doubt is not None:
            await self._send(self._in_doubt)
            self._in_doubt = None
        if self._unsent:
            publish = (next(self._numbers), self._unsent)
            self._unsent = {}
            self._in_doubt = publish
            await self._send(publish)
            self._in_doubt = None

    def _take_differences(self, totals: UsageTotals) -> None:
        """What each changed row gained since it was last taken, added to what waits to be sent."""
        changed, rows = totals.changed, totals.rows
        for row_key in changed:
            row = rows.get(row_key)
            if row is None:
                continue
            sent = self._sent.get(row_key) or [0.0] * len(row)
            difference = [now - before for now, before in zip(row, sent, strict=True)]
            self._sent[row_key] = list(row)
            add_rows(self._unsent, ((row_key, difference),))
        changed.clear()
        if len(self._sent) > len(rows):  # rows of days the totals no longer keep
            for row_key in [row_key for row_key in self._sent if row_key not in rows]:
                del self._sent[row_key]

    async def _send(self, publish: Publish) -> None:
        number, rows = publish
        days = sorted({row_key[0] for row_key in rows})
        hash_number = {day: index for index, day in enumerate(days, start=1)}
        keys = (f"{self.prefix}sent:{self._tag}:{number}", self.prefix + "since", *(self.prefix + day for day in days))
        additions: list[tuple[int, str, str]] = []
        for (day, key_id, model), counters in rows.items():
            row = _row_field(key_id, model)
            for name, amount in zip(COUNTERS, counters, strict=True):
                if amount and isfinite(amount):  # HINCRBYFLOAT refuses an infinity (an upstream's absurd cost)
                    # The amount as text: a Lua number would lose digits on its way to HINCRBYFLOAT.
                    additions.append((hash_number[day], f'["{name}",{row}', repr(float(amount))))
        args: list[str | int | float] = [SENT_MARKER_SECONDS, repr(self._since or time.time())]
        args.extend(_expiry(day) for day in days)
        args.append(json.dumps(additions, separators=(",", ":")))
        try:
            await self.link.run(lambda client: APPLY(client, keys, args))
        except Unavailable as exc:
            raise SharedUnavailable("Redis did not take the usage sums") from exc
        except Exception:  # never sendable as it is: dropped (logged), so that it cannot hold up every later one
            log.exception("usage sums dropped: they could not be sent to Redis")

    async def read(self, totals: UsageTotals, *, day: str | None = None) -> tuple[dict[RowKey, Row], float]:
        oldest = totals.oldest_day()
        days = [day] if day is not None else _days_since(oldest, totals.wall())
        keys = [self.prefix + one for one in days]

        async def fetch(client: Redis) -> tuple[list[dict[bytes, bytes]], bytes | None]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            pipe.get(self.prefix + "since")
            *hashes, since = await pipe.execute()
            return hashes, since

        try:
            hashes, since = await self.link.run(fetch)
        except Unavailable as exc:
            raise SharedUnavailable("Redis did not answer") from exc
        rows: dict[RowKey, Row] = {}
        index_of = {name: index for index, name in enumerate(COUNTERS)}
        for one_day, fields in zip(days, hashes, strict=True):
            for field, value in fields.items():
                parsed = _parse_field(field)
                if parsed is None:
                    continue
                name, key_id, model = parsed
                index = index_of.get(name)
                if index is None:
                    continue
                row = rows.get((one_day, key_id, model))
                if row is None:
                    row = rows[(one_day, key_id, model)] = [0.0] * len(COUNTERS)
                row[index] += float(value)
        first = float(since) if since is not None else totals.since
        return rows, min(first, totals.since)


def _row_field(key_id: str, model: str) -> str:
    """The end of a row's hash fields, after `["<counter>",`: the key id and the model of the JSON array, ASCII (lone
    surrogates escaped; the counters' names need no escaping)."""
    return json.dumps([key_id, model], separators=(",", ":"))[1:]


def _parse_field(field: bytes) -> tuple[str, str, str] | None:
    """A field `_send` wrote (`["<counter>","<key id>","<model>"]`), or None for anything else in the hash (skipped)."""
    try:
        parsed = json.loads(field)
    except ValueError:
        return None
    if not (isinstance(parsed, list) and len(parsed) == 3 and all(isinstance(part, str) for part in parsed)):
        return None
    return parsed[0], parsed[1], parsed[2]


def _expiry(day: str) -> int:
    """When a day's hash may go: KEEP_DAYS days after the day ends."""
    return calendar.timegm(time.strptime(day, "%Y-%m-%d")) + (KEEP_DAYS + 1) * DAY_SECONDS


def _days_since(oldest: str, now: float) -> list[str]:
    """Every day from `oldest` to today (UTC), as YYYY-MM-DD."""
    days: list[str] = []
    moment = now
    while True:
        day = time.strftime("%Y-%m-%d", time.gmtime(moment))
        if day < oldest:
            return days[::-1]
        days.append(day)
        moment -= DAY_SECONDS
