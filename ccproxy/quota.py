"""Counters behind per-key limits: sliding windows (rpm, tpm) and spending per period (budgets).

`LimitStore` is the interface; `MemoryLimitStore` keeps the counters in this process, so with several workers or
instances each one counts on its own (a key may use its limits once per process). A shared cache backend offers a
store all of them count in (`CacheBackend.shared_limit_store()`: ccproxy-redis's `RedisLimitStore`). Checks are
async (a shared store answers over the network); adding usage after a request is synchronous and must not block (an
observer calls it): a networked store queues it, and `flush()` waits for the queue.
"""

from __future__ import annotations

import calendar
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Literal, NamedTuple

WINDOW_SECONDS = 60.0
Period = Literal["day", "month"]


class Refusal(NamedTuple):
    """Which limit a request did not fit (`LimitStore.check`): for a window (`tpm`, `rpm`), the seconds until it has
    room; for a `budget`, what the period has spent."""

    limit: Literal["tpm", "budget", "rpm"]
    value: float


class LimitStore(ABC):
    """Counters by name (`rpm:key_ab12cd34`, `budget:key_ab12cd34:2026-11`); times are seconds (monotonic for
    windows, epoch for periods)."""

    @abstractmethod
    async def take(self, name: str, limit: int, now: float, window: float = WINDOW_SECONDS) -> float | None:
        """Count one event in window `name` if fewer than `limit` are in it: None, or the seconds until one leaves."""

    @abstractmethod
    async def over(self, name: str, limit: float, now: float, window: float = WINDOW_SECONDS) -> float | None:
        """None while the window's total is below `limit`, else the seconds until its oldest amount leaves."""

    @abstractmethod
    def add(self, name: str, amount: float, now: float, window: float = WINDOW_SECONDS) -> None:
        """Add `amount` to window `name` (tokens a finished request used). Must not block."""

    @abstractmethod
    async def spent(self, name: str) -> float:
        """What period counter `name` holds (0 when it does not exist)."""

    @abstractmethod
    def spend(self, name: str, amount: float, expires_at: float) -> None:
        """Add `amount` to period counter `name`, forgotten after `expires_at` (epoch seconds). Must not block."""

    async def flush(self) -> None:  # noqa: B027 — optional: a store that counts at once has nothing on its way
        """Wait until what `add` and `spend` queued has been counted (at server stop)."""

    async def check(
        self,
        now: float,
        *,
        tpm: tuple[str, float] | None = None,
        budget: tuple[str, float] | None = None,
        rpm: tuple[str, int] | None = None,
        window: float = WINDOW_SECONDS,
    ) -> Refusal | None:
        """A key's limits before its request, in this order: the tokens window `tpm` (name, limit) is below its
        limit (`over`), the period counter `budget` (name, limit) is below its limit (`spent`), and one more request
        fits the window `rpm` (name, limit), which then counts it (`take`). None when all hold, else the first that
        does not. A shared store may answer all three in one round trip (ccproxy-redis does)."""
        if tpm is not None:
            wait = await self.over(tpm[0], tpm[1], now, window)
            if wait is not None:
                return Refusal("tpm", wait)
        if budget is not None:
            spent = await self.spent(budget[0])
            if spent >= budget[1]:
                return Refusal("budget", spent)
        if rpm is not None:
            wait = await self.take(rpm[0], rpm[1], now, window)
            if wait is not None:
                return Refusal("rpm", wait)
        return None

    def record(
        self,
        now: float,
        *,
        tokens: tuple[str, float] | None = None,
        cost: tuple[str, float, float] | None = None,
        window: float = WINDOW_SECONDS,
    ) -> None:
        """What a key's finished request used: `tokens` (window name, amount) added to its tokens window, `cost`
        (counter name, US dollars, the epoch second the period ends) to its budget. Must not block. A shared store
        may send both in one round trip (ccproxy-redis does)."""
        if tokens is not None:
            self.add(tokens[0], tokens[1], now, window)
        if cost is not None:
            self.spend(*cost)


class MemoryLimitStore(LimitStore):
    """The in-process store: deques of (time, amount) per window, floats per period."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[tuple[float, float]]] = {}
        self._totals: dict[str, float] = {}
        self._periods: dict[str, tuple[float, float]] = {}  # name -> (expires_at, amount)

    def _window(self, name: str, now: float, window: float) -> deque[tuple[float, float]]:
        events = self._windows.get(name)
        if events is None:
            events = self._windows[name] = deque()
        cutoff = now - window
        while events and events[0][0] <= cutoff:
            self._totals[name] -= events.popleft()[1]
        return events

    async def take(self, name: str, limit: int, now: float, window: float = WINDOW_SECONDS) -> float | None:
        events = self._window(name, now, window)
        if len(events) >= limit:
            return max(events[0][0] + window - now, 0.0)
        events.append((now, 1.0))
        self._totals[name] = self._totals.get(name, 0.0) + 1.0
        return None

    async def over(self, name: str, limit: float, now: float, window: float = WINDOW_SECONDS) -> float | None:
        events = self._window(name, now, window)
        if self._totals.get(name, 0.0) < limit or not events:
            return None
        return max(events[0][0] + window - now, 0.0)

    def add(self, name: str, amount: float, now: float, window: float = WINDOW_SECONDS) -> None:
        self._window(name, now, window).append((now, amount))
        self._totals[name] = self._totals.get(name, 0.0) + amount

    async def spent(self, name: str) -> float:
        entry = self._periods.get(name)
        return entry[1] if entry is not None else 0.0

    def spend(self, name: str, amount: float, expires_at: float) -> None:
        entry = self._periods.get(name)
        if entry is None:  # a new period began: forget the ones that ended
            now = time.time()
            for old in [key for key, (ends, _) in self._periods.items() if ends <= now]:
                del self._periods[old]
        self._periods[name] = (expires_at, (entry[1] if entry is not None else 0.0) + amount)


def period_bounds(period: Period, epoch: float) -> tuple[str, float]:
    """The UTC period `epoch` falls in, as a label (`2026-11-29` or `2026-11`) and the epoch second it ends."""
    day = time.gmtime(epoch)
    if period == "day":
        start = calendar.timegm((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0))
        return time.strftime("%Y-%m-%d", day), float(start + 86400)
    year, month = (day.tm_year + 1, 1) if day.tm_mon == 12 else (day.tm_year, day.tm_mon + 1)
    return time.strftime("%Y-%m", day), float(calendar.timegm((year, month, 1, 0, 0, 0)))
