"""Load shedding: at most MAX_CONCURRENT_REQUESTS API requests per process; one over the cap waits OVERLOAD_WAIT
seconds for a slot, then gets 529 `overloaded_error` (Claude Code and the SDKs retry it with backoff)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from ccproxy.errors import ProxyError
from ccproxy.http.observe import RequestWatch
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
    endpoint: Literal["messages", "count_tokens"],
) -> Callable[Concatenate[CCProxyRequest, P], Coroutine[Any, Any, R]]:
    """`handler` behind the app's RequestGate (none configured: called as it is). A refused request is reported to
    the observers like any other (a 529 in the usage log and in /metrics), so shedding shows. Every request's body
    size goes to the app's HeapTrimmer when it ends."""

    @wraps(handler)
    async def run(request: CCProxyRequest, /, *args: P.args, **kwargs: P.kwargs) -> R:
        state = request.app.ctx
        gate = state.gate
        try:
            if gate is None:
                return await handler(request, *args, **kwargs)
            try:
                await gate.enter()
            except ProxyError as refused:
                observers = state.observers
                if observers is None:
                    raise
                with RequestWatch(observers, request, endpoint):
                    raise refused from None
            try:
                return await handler(request, *args, **kwargs)
            finally:
                gate.leave()
        finally:
            # A big body's memory is handed back after it (ccproxy/memory.py); other requests pay this test only.
            trimmer = state.trimmer
            if trimmer is not None and len(request.body) >= trimmer.min_body:
                trimmer.big_request_done()

    return run
