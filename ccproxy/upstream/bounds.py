"""The resource bounds both HTTP transports share (issue 11 item 7): the bounded wait for a connection slot, the body
cap's and the deadline's failures, and the sweep that cuts bodies still coming in after their request's deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from ccproxy.upstream.errors import ConnectionsExhausted, UpstreamProtocolError, UpstreamTimeout

# What a non-stream answer may weigh unless the backend says otherwise (MAX_UPSTREAM_BODY_BYTES).
DEFAULT_MAX_BODY = 32 * 1024 * 1024
# How often the bodies being read are checked against their deadlines (see Deadlines).
SWEEP_SECONDS = 0.25
# Idle pooled connections are closed after this long.
KEEPALIVE_SECONDS = 60.0
# Request paths come from providers, not clients; a few distinct ones are cached as parsed URLs.
MAX_CACHED_URLS = 32
# A deadline less than this before the end of what the connect and read timeouts allow is left to them: a first
# attempt's deadline (now + connect + read timeout) then costs no timer of its own.
DEADLINE_SLACK = 1.0


class Expiring(Protocol):
    """A response whose body is being read: `expire()` drops its connection so the pending read fails at once."""

    def expire(self) -> None: ...


class Deadlines:
    """The bodies of one transport being read, by deadline, swept every SWEEP_SECONDS by one timer that runs only while
    there are any: a dict entry per request instead of a timer of its own (a uvloop timer armed and cancelled per
    request costs ~3.8 µs; this ~0.4 µs). A body is cut at most SWEEP_SECONDS after its deadline."""

    __slots__ = ("_due", "_timer")

    def __init__(self) -> None:
        self._due: dict[Expiring, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, response: Expiring, deadline: float) -> None:
        self._due[response] = deadline
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep)

    def forget(self, response: Expiring) -> None:
        self._due.pop(response, None)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self) -> None:
        now = time.monotonic()
        for response in [response for response, deadline in self._due.items() if deadline <= now]:
            del self._due[response]
            response.expire()
        self._timer = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep) if self._due else None


async def wait_for_slot(slots: asyncio.Semaphore, wait: float, limit: int) -> None:
    """Take one of the `limit` connection slots, all of which are in use: wait up to `wait` seconds for one, then
    refuse with ConnectionsExhausted (529 for the client, a local refusal: not retried, not a backend failure).
    Callers take a free slot themselves (`acquire()`), so the fast path arms no timer."""
    try:
        async with asyncio.timeout(wait):
            await slots.acquire()
    except TimeoutError:
        raise ConnectionsExhausted(
            f"Every one of the backend's {limit} upstream connections (max_connections) is in use; retry shortly",
            retry_after=1.0,
        ) from None


def body_too_large(max_body: int) -> UpstreamProtocolError:
    """A non-stream answer over `max_body` bytes (502): refused, and not read further."""
    return UpstreamProtocolError(
        f"Upstream answer is larger than {max_body} bytes (MAX_UPSTREAM_BODY_BYTES); not read further"
    )


def past_deadline() -> UpstreamTimeout:
    """The body was still coming in when the request's deadline passed (504, a timeout_error event once streaming)."""
    return UpstreamTimeout(
        "Upstream answer not complete within the request's deadline (REQUEST_TIMEOUT + CONNECT_TIMEOUT)",
        phase="read",
    )
