"""BatchTimer: one pending timer on the event loop, for work gathered during requests and done later in one go.

What the deferred observers (ccproxy/observers.py) and the batching log handlers (ccproxy/logs.py) share. The timer
belongs to the loop that armed it; another loop (a server restarted in the same process) arms its own, and where no
loop runs (start-up, a test, a worker thread) the caller does the work at once. An old loop's timer that fires after
all still does the work: nothing waits on a timer that may never fire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from threading import get_ident

_running_loop = asyncio._get_running_loop  # None outside a loop, where get_running_loop would raise


class BatchTimer:
    """Calls `callback` `delay` seconds after the first `arm()` since it last fired."""

    __slots__ = ("_callback", "_delay", "_loop", "_thread")

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self._delay = delay
        self._callback = callback
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop whose timer is pending
        self._thread = 0  # the thread that loop runs in

    def arm(self) -> bool:
        """Make sure `callback` runs within `delay` on the loop running in this thread; False when no loop runs here
        (the caller then does the work at once)."""
        loop = self._loop
        # While the armed loop runs in this thread it is the running loop (one runs per thread), so it is not asked
        # for: Python 3.11 makes a system call (getpid) to tell, and this runs for every request.
        if loop is not None and self._thread == get_ident() and loop.is_running():
            return True
        loop = _running_loop()
        if loop is None:
            return False
        loop.call_later(self._delay, self._fire, loop)
        self._loop, self._thread = loop, get_ident()
        return True

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            self._loop = None
        self._callback()
