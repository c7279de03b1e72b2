"""FakeClock: virtual monotonic time for code that takes `clock` and `sleep`, so waits cost no real time.

`sleep` parks the caller on a timer; `run(awaitable)` drives it: whenever every task is blocked, the earliest timer
fires and the clock jumps to it. Concurrent sleepers therefore wake in order, as they would in real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
# Loop iterations that let every runnable task reach its next wait before time moves on.
SETTLE_ROUNDS = 20


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []  # every sleep asked for, in order
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driving = 0  # run() calls in progress; a sleep outside one would wait forever

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if not self._driving:
            raise AssertionError("FakeClock.sleep outside FakeClock.run(): nothing would ever wake it")
        self.sleeps.append(seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._order), future))
        await future

    def advance(self, seconds: float) -> None:
        """Let time pass outside any sleep (between requests)."""
        self.now += seconds

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable`, firing timers whenever everything waits on one."""
        task = asyncio.ensure_future(awaitable)
        self._driving += 1
        try:
            return await self._drive(task)
        except asyncio.CancelledError:
            task.cancel()  # the caller was cancelled: so is what it awaited, as with a plain await
            await asyncio.wait([task])
            raise
        finally:
            self._driving -= 1

    async def _drive(self, task: asyncio.Future[T]) -> T:
        while not task.done():
            for _ in range(SETTLE_ROUNDS):
                await asyncio.sleep(0)
                if task.done():
                    break
            else:
                try:
                    self._fire_next()
                except AssertionError:
                    task.cancel()
                    raise
        return task.result()

    def _fire_next(self) -> None:
        while self._timers:
            when, _, future = heapq.heappop(self._timers)
            if not future.done():  # a cancelled sleeper's timer is dropped
                self.now = max(self.now, when)
                future.set_result(None)
                return
        raise AssertionError("every task waits, and not on the fake clock")
