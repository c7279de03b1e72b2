"""RateLimitedUpstream: sliding one-minute windows of requests and tokens, bounded waits, adaptation to 429s."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ccproxy.upstream import (
    InMemoryLimiterState,
    Outcome,
    RateLimitedUpstream,
    RateLimitExceeded,
    UpstreamConnectError,
    UpstreamRequest,
    UpstreamStatusError,
)
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from tests.support.fake_clock import FakeClock
from tests.upstream.conftest import failing, make_request, ok


class Limited:
    """A fake backend behind a limiter; records when (on the fake clock) each request reached it."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        rpm: int = 0,
        tpm: int = 0,
        limit_wait: float = 10.0,
        state: InMemoryLimiterState | None = None,
    ) -> None:
        self.clock = clock
        self.answer = ok()
        self.arrivals: list[float] = []
        self.state = state or InMemoryLimiterState()
        fake = FakeUpstream(self.handle, clock=clock, sleep=clock.sleep)
        self.limiter = RateLimitedUpstream(
            fake, name="b", rpm=rpm, tpm=tpm, limit_wait=limit_wait, state=self.state, clock=clock, sleep=clock.sleep
        )

    def handle(self, request: UpstreamRequest) -> FakeResponse:
        self.arrivals.append(self.clock() - 1000.0)
        return self.answer

    async def send(self, tokens: int = 0, timeout: float = 600.0) -> int:
        response = await self.clock.run(self.limiter.send(make_request(self.clock, tokens=tokens, timeout=timeout)))
        return response.status


async def test_a_burst_beyond_rpm_waits_for_the_window(clock: FakeClock) -> None:
    backend = Limited(clock, rpm=3, limit_wait=120.0)
    statuses = await clock.run(asyncio.gather(*(backend.limiter.send(make_request(clock)) for _ in range(5))))
    assert [response.status for response in statuses] == [200] * 5
    assert backend.arrivals == [0.0, 0.0, 0.0, 60.0, 60.0]
    assert clock.sleeps == [60.0, 60.0]  # only the two over the limit waited


async def test_the_window_slides(clock: FakeClock) -> None:
    backend = Limited(clock, rpm=2, limit_wait=60.0)
    await backend.send()
    clock.advance(30.0)
    await backend.send()
    clock.advance(10.0)
    await backend.send()  # waits 20 s, until the first request is a minute old
    assert backend.arrivals == [0.0, 30.0, 60.0]
    assert clock.sleeps == [20.0]


async def test_a_wait_longer_than_limit_wait_fails_at_once_with_retry_after(clock: FakeClock) -> None:
    backend = Limited(clock, rpm=2, limit_wait=10.0)
    await backend.send()
    await backend.send()
    clock.advance(5.0)
    with pytest.raises(RateLimitExceeded) as caught:
        await backend.send()
    assert caught.value.retry_after == 55.0
    assert "Local rate limit of backend b reached (rpm 2); retry in 55 s" in caught.value.message
    assert (len(backend.arrivals), clock.sleeps) == (2, [])
    clock.advance(47.0)
    assert await backend.send() == 200  # 8 s to wait now: within limit_wait
    assert clock.sleeps == [8.0]


async def test_the_wait_never_passes_the_deadline(clock: FakeClock) -> None:
    backend = Limited(clock, rpm=1, limit_wait=120.0)
    await backend.send()
    with pytest.raises(RateLimitExceeded):
        await backend.send(timeout=30.0)
    assert clock.sleeps == []


async def test_tokens_per_minute(clock: FakeClock) -> None:
    backend = Limited(clock, tpm=1000, limit_wait=120.0)
    await backend.send(tokens=600)
    clock.advance(10.0)
    await backend.send(tokens=300)
    await backend.send(tokens=300)  # 1200 > 1000: waits for the first 600 to leave the window
    assert backend.arrivals == [0.0, 10.0, 60.0]
    await backend.send(tokens=5000)  # larger than the whole limit: goes alone, once the window is empty
    assert backend.arrivals[-1] == 120.0


async def test_rpm_and_tpm_together_wait_for_the_later(clock: FakeClock) -> None:
    backend = Limited(clock, rpm=2, tpm=1000, limit_wait=120.0)
    await backend.send(tokens=10)
    clock.advance(20.0)
    await backend.send(tokens=900)
    clock.advance(10.0)
    await backend.send(tokens=200)  # a request slot frees at 60 s, but the tokens only at 80 s
    assert backend.arrivals == [0.0, 20.0, 80.0]


async def test_the_refusal_names_the_limits(clock: FakeClock) -> None:
    backend = Limited(clock, rpm=1, tpm=1000, limit_wait=0.0)
    await backend.send()
    with pytest.raises(RateLimitExceeded) as caught:
        await backend.send()
    assert "(rpm 1, tpm 1000)" in caught.value.message


async def test_a_429_cuts_the_rate_to_a_fifth(clock: FakeClock) -> None:
    backend = Limited(clock, rpm=10, limit_wait=0.0)
    backend.answer = failing(429)
    with pytest.raises(UpstreamStatusError):
        await backend.send()
    backend.answer = ok()
    assert await backend.send() == 200  # 2 of 10 per minute now, the 429 included
    with pytest.raises(RateLimitExceeded):
        await backend.send()


async def admitted_in_a_fresh_minute(state: InMemoryLimiterState, clock: FakeClock, rpm: int = 10) -> int:
    clock.advance(61.0)
    count = 0
    while await state.acquire("b", clock(), 0, rpm, 0) == 0.0:
        count += 1
    return count


async def test_ten_successes_in_a_row_raise_the_rate_by_a_tenth(clock: FakeClock) -> None:
    state = InMemoryLimiterState()
    assert await admitted_in_a_fresh_minute(state, clock) == 10
    await state.feedback("b", Outcome.THROTTLED)
    assert await admitted_in_a_fresh_minute(state, clock) == 2
    for _ in range(9):
        await state.feedback("b", Outcome.ANSWERED)
    assert await admitted_in_a_fresh_minute(state, clock) == 2
    await state.feedback("b", Outcome.ANSWERED)
    assert await admitted_in_a_fresh_minute(state, clock) == 3
    for _ in range(9):
        await state.feedback("b", Outcome.ANSWERED)
    await state.feedback("b", Outcome.FAILED)  # the row is broken
    await state.feedback("b", Outcome.ANSWERED)
    assert await admitted_in_a_fresh_minute(state, clock) == 3
    for _ in range(200):
        await state.feedback("b", Outcome.ANSWERED)
    assert await admitted_in_a_fresh_minute(state, clock) == 10  # never above the configured limit


async def test_the_wrapper_reports_what_became_of_each_request(clock: FakeClock) -> None:
    reported: list[Outcome] = []

    class Recording(InMemoryLimiterState):
        async def feedback(self, key: str, outcome: Outcome) -> None:
            reported.append(outcome)

    backend = Limited(clock, rpm=100, state=Recording())
    for answer in [ok(), failing(429), failing(400), failing(503), FakeResponse(error=UpstreamConnectError("x"))]:
        backend.answer = answer
        with contextlib.suppress(UpstreamStatusError, UpstreamConnectError):
            await backend.send()
    assert reported == [Outcome.ANSWERED, Outcome.THROTTLED, Outcome.ANSWERED, Outcome.FAILED, Outcome.FAILED]


async def test_backends_sharing_a_state_have_their_own_windows(clock: FakeClock) -> None:
    state = InMemoryLimiterState()
    assert await state.acquire("a", clock(), 0, 1, 0) == 0.0
    assert await state.acquire("a", clock(), 0, 1, 0) == 60.0
    assert await state.acquire("b", clock(), 0, 1, 0) == 0.0
