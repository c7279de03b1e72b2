"""RedisLink: one process's Redis pool, shared by the cache and the state stores, and what happens while Redis is down.

Every operation fails fast (short socket timeouts, no client-side retries). The first failure marks Redis down, is
logged once, and starts a background probe; until the probe finds Redis back, operations are not even tried — they
raise `Unavailable` at once and the caller falls back (a cache miss, in-process limiter and breaker states). The
recovery is logged once too. A command Redis answers with an error (out of memory, a read-only replica) falls back
alone, without marking Redis down; each new kind of error is logged once. The pool is created on the event loop that
first needs it (`open()` at server start), never at import or factory time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from ccproxy.tasks import stop_task
from ccproxy_redis.options import RedisOptions

log = logging.getLogger("ccproxy.redis")

T = TypeVar("T")
# What an unreachable Redis raises: refused or dropped connections, timeouts, a server still loading, bad auth.
# A ResponseError is not among them: Redis answered, refusing that one command (OOM, READONLY after a failover).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
MAX_ERROR_TEXT = 200
PROBE_TASK = "ccproxy-redis-probe"


class Unavailable(Exception):
    """Redis was not used for this operation (down, or every pooled connection busy): fall back."""


class LuaScript:
    """A Lua script run with EVALSHA; loaded again when the server answers NOSCRIPT (a restart, SCRIPT FLUSH)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


def describe(exc: BaseException) -> str:
    """An error for a log line or the stats: its type and message, bounded (redis-py never puts the password in)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_TEXT]


class RedisLink:
    """The pool of one server process and its view of Redis's health (see the module docstring)."""

    def __init__(self, options: RedisOptions, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.where = options.where()
        self._clock = clock
        self._client: Redis | None = None
        self._slots: asyncio.Semaphore | None = None
        self._down_since: float | None = None
        self._probe: asyncio.Task[None] | None = None
        self.outages = 0  # times Redis went down
        self.failed = 0  # operations that failed on Redis
        self.skipped = 0  # operations not tried because Redis was down
        self.busy = 0  # operations not tried because every pooled connection was in use for too long
        self.refused = 0  # operations Redis answered with an error
        self.last_error: str | None = None
        self._last_refusal: str | None = None  # the kind of refusal last logged
        self._missed_before = 0  # operations that went without Redis before the current outage began

    @property
    def up(self) -> bool:
        return self._down_since is None

    async def open(self) -> None:
        """Create the pool on the running loop and check Redis answers; an unreachable Redis is logged, not raised."""
        client = self._client or self._connect()
        try:
            await client.ping()
        except OUTAGE_ERRORS as exc:
            self._went_down(exc)
        else:
            log.info("Redis at %s: connected", self.where)

    async def close(self) -> None:
        """Stop probing and close the pool (at server stop)."""
        probe, self._probe = self._probe, None
        await stop_task(probe)
        self._down_since = None  # a later open() finds out afresh
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def run(self, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """`operation(client)`, or Unavailable when Redis is down, too busy, or fails now (marking it down)."""
        if self._down_since is not None:
            self.skipped += 1
            if self._probe is None or self._probe.done():  # its loop ended under it: probe from this one
                self._start_probe()
            raise Unavailable(self.where)
        client = self._client or self._connect()
        slots = self._slots
        assert slots is not None  # set with the client
        if slots.locked():  # the fast path takes no timer
            try:
                async with asyncio.timeout(self.options.socket_timeout):
                    await slots.acquire()
            except TimeoutError:
                self.busy += 1
                raise Unavailable(self.where) from None
        else:
            await slots.acquire()
        try:
            return await operation(client)
        except ResponseError as exc:
            self._was_refused(exc)
            raise Unavailable(self.where) from exc
        except OUTAGE_ERRORS as exc:
            self._went_down(exc)
            raise Unavailable(self.where) from exc
        finally:
            slots.release()

    def health(self) -> dict[str, Any]:
        """For the stats: whether Redis is in use, since when it is not, and what went without it."""
        return {
            "url": self.where,
            "healthy": self.up,
            "down_for_s": None if self._down_since is None else round(self._clock() - self._down_since, 3),
            "outages": self.outages,
            "failed_operations": self.failed,
            "skipped_operations": self.skipped,
            "busy_operations": self.busy,
            "refused_operations": self.refused,
            "last_error": self.last_error,
        }

    def _connect(self) -> Redis:
        options = self.options
        self._client = Redis.from_url(
            options.url,
            max_connections=options.pool_size,
            socket_connect_timeout=options.connect_timeout,
            socket_timeout=options.socket_timeout,
            retry=Retry(NoBackoff(), 0),  # fail fast: the link decides what happens next, not the client
            client_name="ccproxy",
        )
        self._slots = asyncio.Semaphore(options.pool_size)
        return self._client

    def _was_refused(self, exc: ResponseError) -> None:
        self.refused += 1
        self.last_error = describe(exc)
        kind = type(exc).__name__  # the text varies with the script and line; the kind does not
        if kind != self._last_refusal:
            self._last_refusal = kind
            log.warning("Redis at %s refused a command (%s): it went without Redis", self.where, self.last_error)

    def _went_down(self, exc: BaseException) -> None:
        self.failed += 1
        self.last_error = describe(exc)
        if self._down_since is not None:
            return  # concurrent failures of one outage: one log line
        self._down_since = self._clock()
        self._missed_before = self._missed() - 1  # the operation that failed is the outage's first
        self.outages += 1
        log.warning(
            "Redis at %s is unavailable (%s): serving without it (cache misses, per-process rate limits and circuit "
            "breakers) and checking again every %g s",
            self.where,
            self.last_error,
            self.options.retry_interval,
        )
        self._start_probe()

    def _start_probe(self) -> None:
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_back(), name=PROBE_TASK)

    async def _probe_until_back(self) -> None:
        client = self._client
        assert client is not None
        while True:
            await asyncio.sleep(self.options.retry_interval)
            try:
                await client.connection_pool.disconnect()  # connections from before the outage are dead
                await client.ping()
            except OUTAGE_ERRORS as exc:
                self.last_error = describe(exc)
                continue
            break
        down_since, self._down_since, self._probe = self._down_since, None, None
        log.warning(
            "Redis at %s is back after %.1f s; %d operations went without it",
            self.where,
            self._clock() - (self._clock() if down_since is None else down_since),
            self._missed() - self._missed_before,
        )

    def _missed(self) -> int:
        return self.failed + self.skipped + self.busy + self.refused
