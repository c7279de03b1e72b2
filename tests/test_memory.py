"""ccproxy/memory.py: glibc's mmap threshold is fixed and the heap trimmed after big requests where glibc is the C
library (and nothing breaks elsewhere)."""

from __future__ import annotations

import asyncio
import logging
import platform
import threading

import pytest

from ccproxy.memory import HeapTrimmer, heap_trim, return_big_buffers

GLIBC = platform.libc_ver()[0] == "glibc"


def test_the_threshold_is_set_with_glibc_and_skipped_elsewhere() -> None:
    assert return_big_buffers() is GLIBC


def test_the_heap_trim_is_glibcs_malloc_trim_and_none_elsewhere() -> None:
    trim = heap_trim()
    assert (trim is not None) is GLIBC
    if trim is not None:
        assert trim() in (0, 1)  # 1: memory was given back


class Trims:
    """A trim function that records the threads it ran in."""

    def __init__(self, fail: bool = False) -> None:
        self.threads: list[int] = []
        self.fail = fail
        self.ran = threading.Event()

    def __call__(self) -> int:
        self.threads.append(threading.get_ident())
        self.ran.set()
        if self.fail:
            raise OSError("no")
        return 1


async def until(condition: threading.Event, seconds: float = 2.0) -> None:
    await asyncio.get_running_loop().run_in_executor(None, condition.wait, seconds)


async def test_one_trim_after_the_last_big_request_of_a_burst_off_the_loop() -> None:
    trims = Trims()
    trimmer = HeapTrimmer(trims, delay=0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    trimmer.big_request_done()
    await asyncio.sleep(0.06)
    trimmer.big_request_done()  # pushes the trim back
    await asyncio.sleep(0.06)
    assert trims.threads == []  # 0.12 s after the first, but only 0.06 s after the last
    await until(trims.ran)
    assert loop.time() - started >= 0.16
    assert len(trims.threads) == 1 and trims.threads[0] != threading.get_ident()
    trims.ran.clear()
    trimmer.big_request_done()  # a later burst trims again
    await until(trims.ran)
    assert len(trims.threads) == 2


async def test_without_glibc_nothing_is_scheduled() -> None:
    trimmer = HeapTrimmer(None, delay=0.01)
    trimmer.big_request_done()
    assert trimmer._timer._loop is None  # the BatchTimer was never armed


async def test_a_failing_trim_is_logged_and_the_next_one_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    trims = Trims(fail=True)
    trimmer = HeapTrimmer(trims, delay=0.01)
    with caplog.at_level(logging.WARNING, logger="ccproxy.memory"):
        trimmer.big_request_done()
        await until(trims.ran)
        await asyncio.sleep(0.05)
    assert "trimming the heap failed: no" in caplog.text
    trims.ran.clear()
    trimmer.big_request_done()
    await until(trims.ran)
    assert len(trims.threads) == 2


def test_a_trimmer_moves_on_to_a_new_event_loop() -> None:
    """A server restarted in the same process (the test client does it per request) runs on a new loop: a big
    request there is trimmed after, although the old loop ended with its timer still pending."""
    trims = Trims()
    trimmer = HeapTrimmer(trims, delay=0.05)

    async def arm() -> None:
        trimmer.big_request_done()

    async def arm_and_wait() -> None:
        trimmer.big_request_done()
        await until(trims.ran)

    asyncio.run(arm())  # ends before its timer fires
    assert trims.threads == []
    asyncio.run(arm_and_wait())
    assert len(trims.threads) == 1
