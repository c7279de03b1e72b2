"""RetryingUpstream: the same backend again after a transient failure, with backoff, before the first byte only."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable

from ccproxy.upstream.base import Clock, Sleep, Upstream, UpstreamRequest, UpstreamResponse, UpstreamWrapper
from ccproxy.upstream.errors import UpstreamFailure, can_retry

BACKOFF_BASE = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 8.0
# A Retry-After longer than this is not waited for: the failure goes up at once (to the next target, or the client
# with its retry-after) instead of holding the request.
RETRY_AFTER_CAP = 30.0


class RetryingUpstream(UpstreamWrapper):
    """Up to `retries` extra attempts on failures `can_retry` accepts.

    The wait before attempt n+1 is the upstream's Retry-After when it gave one, else exponential backoff with full
    jitter (uniform in [0, min(cap, base * factor**n)]). A wait longer than `retry_after_cap`, or one that would end
    past `request.deadline`, is not taken: the failure is raised instead. `send` returns once the status line is in,
    so nothing is retried after the first byte.
    """

    def __init__(
        self,
        inner: Upstream,
        retries: int,
        *,
        base: float = BACKOFF_BASE,
        factor: float = BACKOFF_FACTOR,
        cap: float = BACKOFF_CAP,
        retry_after_cap: float = RETRY_AFTER_CAP,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(inner)
        self.retries = retries
        self.base = base
        self.factor = factor
        self.cap = cap
        self.retry_after_cap = retry_after_cap
        self.clock = clock
        self.sleep = sleep
        self.random = random

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        attempt = 0
        while True:
            try:
                return await self.inner.send(request)
            except UpstreamFailure as exc:
                delay = self._delay(exc, attempt, request.deadline)
                if delay is None:
                    raise
            await self.sleep(delay)
            attempt += 1
            request = dataclasses.replace(request, attempt=request.attempt + 1)

    def _delay(self, exc: UpstreamFailure, attempt: int, deadline: float) -> float | None:
        """Seconds to wait before the next attempt, or None when there is to be none."""
        if attempt >= self.retries or not can_retry(exc):
            return None
        if exc.retry_after is not None:
            delay = exc.retry_after
            if delay > self.retry_after_cap:
                return None
        else:
            delay = self.backoff(attempt)
        return delay if self.clock() + delay < deadline else None

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * factor**attempt)]."""
        return self.random() * min(self.cap, self.base * self.factor**attempt)
