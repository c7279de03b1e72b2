"""Memory of big requests goes back to the operating system when freed (glibc's malloc would keep it)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable

from ccproxy.batch_timer import BatchTimer

# mallopt(3) parameter: allocations at least this large are served by mmap and unmapped when freed.
M_MMAP_THRESHOLD = -3
# 1 MiB: request bodies, their parsed text and token lists above it are mapped; everything smaller stays in the heap.
MMAP_THRESHOLD_BYTES = 1024 * 1024
# A request whose body is at least this big has the heap trimmed after it (HeapTrimmer): far above what Claude Code
# sends in a long session, so a steady load of ordinary requests never pays for trims.
TRIM_AFTER_BODY_BYTES = 8 * 1024 * 1024
TRIM_DELAY_SECONDS = 1.0  # after the last big request ended: one trim for a burst of them

log = logging.getLogger("ccproxy.memory")


def return_big_buffers() -> bool:
    """Fix glibc's mmap threshold (called once per server process); False where the C library is not glibc.

    glibc raises the threshold to the size of each mapped block freed (up to 32 MiB), so after the first big body
    the next ones come from the heap, whose freed pages are kept: 16 concurrent 30 MB count_tokens bodies left a
    worker at ~1 GB RSS for good, ~0.65 GB with the threshold fixed (docs/operations.md, "Limits"). musl (Alpine)
    maps big blocks anyway.
    """
    mallopt = _libc_function("mallopt")
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def heap_trim() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)`: give the free pages of every malloc heap back to the system; None without glibc."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return None
    return lambda: int(trim(0))


def _libc_function(name: str) -> Callable[..., int] | None:
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):  # not glibc (no such function), or no C library to load
        return None
    return function


class HeapTrimmer:
    """Trims the heap once a burst of big requests (TRIM_AFTER_BODY_BYTES) is over: at least TRIM_DELAY_SECONDS
    after the last one ended (at most twice that).

    Why: a big body parsed into many small objects (a 33 MB count_tokens body of 120,000 messages) fills glibc's heaps
    with blocks below the mmap threshold. Freed, they stay in the heaps: 16 such bodies at once left a worker 59-415
    MB over its idle RSS for good; with the trim, 2-5 MB (~10-20 ms a trim; docs/operations.md, "Memory per
    request", benchmarks/big_bodies.py). The trim runs in a worker thread (ctypes releases the GIL), never on the loop;
    one runs at a time. The wait is a BatchTimer (the deferred observers' and the log handlers' too), so a server
    restarted in the same process gets a timer on its own loop. `trim` None (no glibc): nothing to do.
    """

    __slots__ = ("_due", "_running", "_timer", "delay", "min_body", "trim")

    def __init__(
        self,
        trim: Callable[[], int] | None,
        *,
        min_body: int = TRIM_AFTER_BODY_BYTES,
        delay: float = TRIM_DELAY_SECONDS,
    ) -> None:
        self.trim = trim
        self.min_body = min_body
        self.delay = delay
        self._timer = BatchTimer(delay, self._fire)
        self._due = 0.0
        self._running = False

    def big_request_done(self) -> None:
        """A request with a body of at least `min_body` bytes ended (on the event loop): the trim waits for quiet."""
        if self.trim is None:
            return
        self._due = time.monotonic() + self.delay
        self._timer.arm()

    def _fire(self) -> None:
        if time.monotonic() < self._due:  # another big request ended meanwhile: wait again
            self._timer.arm()
            return
        if self._running:
            return
        try:
            future = asyncio.get_running_loop().run_in_executor(None, self._run)
        except RuntimeError:  # the loop's executor is shut down: the server is stopping
            return
        self._running = True
        future.add_done_callback(self._ran)

    def _run(self) -> int:
        assert self.trim is not None  # checked before the timer is armed
        return self.trim()

    def _ran(self, future: asyncio.Future[int]) -> None:
        self._running = False
        if not future.cancelled() and future.exception() is not None:
            log.warning("trimming the heap failed: %s", future.exception())
