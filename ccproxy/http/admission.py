"""Load shedding: at most MAX_CONCURRENT_REQUESTS API requests per process; one over the cap waits OVERLOAD_WAIT
seconds for a slot, then gets 529 `overloaded_error` (Claude Code and the SDKs retry it with backoff)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

from ccproxy.errors import ProxyError
from ccproxy.state import CCProxyRequest

P = ParamSpec("P")
R = TypeVar("R")
OVERLOADED_STATUS = 529
RETRY_AFTER_SECONDS = "1"


class RequestGate:
    """A counted semaphore: `in_flight` for status and metrics, a bounded wait, then a 529."""

    __slots__ = ("_slots", "in_flight", "limit", "wait")

    def __init__(self, limit: int, wait: float) -> None:
        self.limit = limit
        self.wait = wait
        self.in_flight = 0
        self._slots = asyncio.Semaphore(limit)

    async def enter(self) -> None:
        """Take a slot, waiting at most `wait` seconds for one; raise the 529 when none frees up."""
        slots = self._slots
        if slots.locked():  # the fast path arms no timer
            try:
                async with asyncio.timeout(self.wait):
                    await slots.acquire()
            except TimeoutError:
                raise overloaded(self.limit) from None
        else:
            await slots.acquire()
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        self._slots.release()


def overloaded(limit: int) -> ProxyError:
    return ProxyError(
        f"The proxy is handling its maximum of {limit} concurrent requests (MAX_CONCURRENT_REQUESTS); retry shortly",
        status=OVERLOADED_STATUS,
        headers={"retry-after": RETRY_AFTER_SECONDS},
    )


def gated(
    handler: Callable[Concatenate[CCProxyRequest, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[CCProxyRequest, P], Coroutine[Any, Any, R]]:
    """`handler` behind the app's RequestGate (none configured: called as it is)."""

    @wraps(handler)
    async def run(request: CCProxyRequest, /, *args: P.args, **kwargs: P.kwargs) -> R:
        gate = request.app.ctx.gate
        if gate is None:
            return await handler(request, *args, **kwargs)
        await gate.enter()
        try:
            return await handler(request, *args, **kwargs)
        finally:
            gate.leave()

    return run
