"""RateLimitedUpstream: a backend's rpm / tpm limits on sliding one-minute windows, adapting to the upstream's 429s.

A request is admitted when the requests (and their estimated tokens) of the last 60 s leave room for it; otherwise it
waits — up to `limit_wait` seconds and never past its deadline — and fails with RateLimitExceeded when no room would
free up in that time. Adaptive: a 429 cuts the allowed rate to 20 % of the configured limits; each ten successes in
a row raise it by another 10 % of them, back up to 100 %. The state sits behind `LimiterState` (shareable, e.g. Redis).
`on_wait` hears of each request that waited, and for how long (the metrics' limiter series are fed by it).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from enum import Enum

from ccproxy.upstream.base import Clock, Sleep, Upstream, UpstreamRequest, UpstreamResponse, UpstreamWrapper
from ccproxy.upstream.errors import RateLimitExceeded, UpstreamFailure, UpstreamStatusError

WINDOW = 60.0
# The allowed rate in tenths of the configured limits: cut to LEVEL_AFTER_429 by a 429, up one per
# SUCCESSES_PER_LEVEL successes in a row, up to FULL_LEVEL.
FULL_LEVEL = 10
LEVEL_AFTER_429 = 2
SUCCESSES_PER_LEVEL = 10


# on_wait(backend name, seconds waited): called on the request's task, must not block.
LimiterObserver = Callable[[str, float], None]


class Outcome(Enum):
    ANSWERED = "answered"  # the upstream answered (any status but 429)
    THROTTLED = "throttled"  # the upstream answered 429
    FAILED = "failed"  # no answer (connection, timeout) or a 5xx


class LimiterState(ABC):
    """Where the windows and the adaptive level live, by key (the backend's name)."""

    @abstractmethod
    async def acquire(self, key: str, now: float, tokens: int, rpm: int, tpm: int) -> float:
        """Atomically: 0.0 when the request fits the windows (and is now counted in them), else the seconds until it
        could fit (nothing counted). `rpm` / `tpm` are the configured limits, 0 meaning none."""

    @abstractmethod
    async def feedback(self, key: str, outcome: Outcome) -> None:
        """What became of an admitted request; moves the adaptive level."""


class _Window:
    __slots__ = ("entries", "level", "streak", "tokens")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()  # (admitted at, tokens), oldest first
        self.tokens = 0
        self.level = FULL_LEVEL
        self.streak = 0


class InMemoryLimiterState(LimiterState):
    """Windows in this process (each worker has its own)."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}

    def _window(self, key: str) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        return window

    async def acquire(self, key: str, now: float, tokens: int, rpm: int, tpm: int) -> float:
        window = self._window(key)
        entries = window.entries
        horizon = now - WINDOW
        while entries and entries[0][0] <= horizon:
            window.tokens -= entries.popleft()[1]
        wait = 0.0
        if rpm:
            allowed = max(1, rpm * window.level // FULL_LEVEL)
            if len(entries) >= allowed:
                wait = entries[len(entries) - allowed][0] - horizon
        if tpm:
            allowed = max(1, tpm * window.level // FULL_LEVEL)
            wait = max(wait, _tokens_wait(entries, window.tokens, max(0, allowed - tokens), horizon))
        if wait > 0:
            return wait
        entries.append((now, tokens))
        window.tokens += tokens
        return 0.0

    async def feedback(self, key: str, outcome: Outcome) -> None:
        window = self._window(key)
        if outcome is Outcome.ANSWERED:
            if window.level < FULL_LEVEL:
                window.streak += 1
                if window.streak >= SUCCESSES_PER_LEVEL:
                    window.level += 1
                    window.streak = 0
        elif outcome is Outcome.THROTTLED:
            window.level = LEVEL_AFTER_429
            window.streak = 0
        else:
            window.streak = 0


def _tokens_wait(entries: deque[tuple[float, int]], used: int, room: int, horizon: float) -> float:
    """Seconds until the window's tokens drop to `room` (0 when they already have)."""
    for admitted_at, tokens in entries:
        if used <= room:
            break
        used -= tokens
        if used <= room:
            return admitted_at - horizon
    return 0.0


class RateLimitedUpstream(UpstreamWrapper):
    """Holds a send until the backend's windows have room (see the module docstring)."""

    def __init__(
        self,
        inner: Upstream,
        *,
        name: str,
        rpm: int,
        tpm: int,
        limit_wait: float,
        state: LimiterState,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        on_wait: LimiterObserver | None = None,
    ) -> None:
        super().__init__(inner)
        self.name = name
        self.rpm = rpm
        self.tpm = tpm
        self.limit_wait = limit_wait
        self.state = state
        self.clock = clock
        self.sleep = sleep
        self.on_wait = on_wait

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        now = self.clock()
        wait = await self.state.acquire(self.name, now, request.tokens, self.rpm, self.tpm)
        if wait:
            await self._wait(request, now, wait)
        try:
            response = await self.inner.send(request)
        except UpstreamFailure as exc:
            await self.state.feedback(self.name, _outcome(exc))
            raise
        await self.state.feedback(self.name, Outcome.ANSWERED)
        return response

    async def _wait(self, request: UpstreamRequest, now: float, wait: float) -> None:
        """Sleep until the windows have room, or raise RateLimitExceeded when that is too far off."""
        started = now
        give_up_at = min(now + self.limit_wait, request.deadline)
        try:
            while wait:
                if now + wait > give_up_at:
                    raise RateLimitExceeded(
                        f"Local rate limit of backend {self.name} reached ({self._limits()}); retry in {wait:.0f} s",
                        retry_after=wait,
                    )
                await self.sleep(wait)
                now = self.clock()
                wait = await self.state.acquire(self.name, now, request.tokens, self.rpm, self.tpm)
        finally:
            if self.on_wait is not None and now > started:
                self.on_wait(self.name, now - started)

    def _limits(self) -> str:
        return ", ".join(f"{name} {limit}" for name, limit in (("rpm", self.rpm), ("tpm", self.tpm)) if limit)


def _outcome(exc: UpstreamFailure) -> Outcome:
    if isinstance(exc, UpstreamStatusError) and exc.status < 500:
        return Outcome.THROTTLED if exc.status == 429 else Outcome.ANSWERED
    return Outcome.FAILED
