"""The Redis breaker and limiter states keep the in-memory states' semantics: the same scenarios run against both.

Here the Redis states take the caller's `now` (`server_clock=False`), so time is the test's to move; the
server-clock, cross-process behaviour is in test_redis_shared.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis_testing import options

from ccproxy.upstream import Admission, InMemoryBreakerState, InMemoryLimiterState, Outcome, UpstreamStates
from ccproxy_redis import RedisBreakerState, RedisLimiterState, RedisLink
from tests.support.redis_server import RedisServer

T0 = 1000.0
COOLDOWN = 60.0
THRESHOLD = 3
KEY = "b"


@pytest.fixture(params=["memory", "redis"])
async def states(
    request: pytest.FixtureRequest, redis_server: RedisServer, prefix: str
) -> AsyncIterator[UpstreamStates]:
    if request.param == "memory":
        yield UpstreamStates(InMemoryBreakerState(), InMemoryLimiterState())
        return
    link = RedisLink(options(redis_server.url, prefix))
    await link.open()
    yield UpstreamStates(RedisBreakerState(link, server_clock=False), RedisLimiterState(link, server_clock=False))
    assert link.up and link.failed == 0  # every answer came from Redis, none from the fallback
    await link.close()


async def fail(states: UpstreamStates, times: int, now: float = T0, trial: bool = False) -> None:
    for _ in range(times):
        await states.breaker.record(KEY, failed=True, trial=trial, now=now, threshold=THRESHOLD)


# --- breaker -------------------------------------------------------------------------------------------------------


async def test_a_closed_circuit_admits(states: UpstreamStates) -> None:
    assert await states.breaker.admit(KEY, T0, COOLDOWN) == Admission(True)


async def test_it_opens_at_the_threshold_and_says_how_long_is_left(states: UpstreamStates) -> None:
    await fail(states, THRESHOLD - 1)
    assert (await states.breaker.admit(KEY, T0, COOLDOWN)).allowed
    await fail(states, 1)
    assert await states.breaker.admit(KEY, T0, COOLDOWN) == Admission(False, retry_after=COOLDOWN)
    refused = await states.breaker.admit(KEY, T0 + 45.0, COOLDOWN)
    assert not refused.allowed and refused.retry_after == pytest.approx(15.0)


async def test_a_success_in_between_resets_the_count(states: UpstreamStates) -> None:
    await fail(states, THRESHOLD - 1)
    await states.breaker.record(KEY, failed=False, trial=False, now=T0, threshold=THRESHOLD)
    await fail(states, THRESHOLD - 1)
    assert (await states.breaker.admit(KEY, T0, COOLDOWN)).allowed


async def test_failures_while_open_do_not_restart_the_cooldown(states: UpstreamStates) -> None:
    await fail(states, THRESHOLD)
    await fail(states, 2, now=T0 + 30.0)  # late answers of requests admitted before it opened
    assert (await states.breaker.admit(KEY, T0 + 30.0, COOLDOWN)).retry_after == pytest.approx(30.0)


async def test_exactly_one_trial_after_the_cooldown_and_its_success_closes(states: UpstreamStates) -> None:
    await fail(states, THRESHOLD)
    after = T0 + COOLDOWN
    assert await states.breaker.admit(KEY, after, COOLDOWN) == Admission(True, trial=True)
    assert await states.breaker.admit(KEY, after, COOLDOWN) == Admission(False)  # the trial runs: no retry_after
    assert await states.breaker.admit(KEY, after + 1, COOLDOWN) == Admission(False)
    await states.breaker.record(KEY, failed=False, trial=True, now=after + 1, threshold=THRESHOLD)
    assert await states.breaker.admit(KEY, after + 1, COOLDOWN) == Admission(True)
    await fail(states, THRESHOLD - 1, now=after + 1)  # the count started again from zero
    assert (await states.breaker.admit(KEY, after + 1, COOLDOWN)).allowed


async def test_a_failed_trial_opens_it_again_for_a_full_cooldown(states: UpstreamStates) -> None:
    await fail(states, THRESHOLD)
    after = T0 + COOLDOWN
    assert (await states.breaker.admit(KEY, after, COOLDOWN)).trial
    await fail(states, 1, now=after + 2, trial=True)
    assert await states.breaker.admit(KEY, after + 2, COOLDOWN) == Admission(False, retry_after=COOLDOWN)
    assert (await states.breaker.admit(KEY, after + 2 + COOLDOWN, COOLDOWN)).trial


async def test_a_released_trial_goes_to_the_next_request(states: UpstreamStates) -> None:
    await fail(states, THRESHOLD)
    after = T0 + COOLDOWN
    assert (await states.breaker.admit(KEY, after, COOLDOWN)).trial
    await states.breaker.release(KEY)
    assert (await states.breaker.admit(KEY, after, COOLDOWN)).trial


async def test_backends_have_their_own_circuits(states: UpstreamStates) -> None:
    await fail(states, THRESHOLD)
    assert not (await states.breaker.admit(KEY, T0, COOLDOWN)).allowed
    assert (await states.breaker.admit("other", T0, COOLDOWN)).allowed


# --- limiter -------------------------------------------------------------------------------------------------------


async def acquire(states: UpstreamStates, now: float, tokens: int = 0, rpm: int = 0, tpm: int = 0) -> float:
    return await states.limiter.acquire(KEY, now, tokens, rpm, tpm)


async def test_requests_beyond_rpm_wait_for_the_oldest_to_leave_the_window(states: UpstreamStates) -> None:
    assert [await acquire(states, T0 + offset, rpm=3) for offset in (0, 10, 20)] == [0.0, 0.0, 0.0]
    assert await acquire(states, T0 + 30, rpm=3) == pytest.approx(30.0)
    assert await acquire(states, T0 + 59, rpm=3) == pytest.approx(1.0)
    assert await acquire(states, T0 + 60, rpm=3) == 0.0  # the first left the window (60 s old)
    assert await acquire(states, T0 + 65, rpm=3) == pytest.approx(5.0)  # the second leaves at 70


async def test_a_refused_request_is_not_counted(states: UpstreamStates) -> None:
    assert await acquire(states, T0, rpm=1) == 0.0
    for _ in range(5):
        assert await acquire(states, T0 + 1, rpm=1) == pytest.approx(59.0)
    assert await acquire(states, T0 + 60, rpm=1) == 0.0


async def test_tokens_per_minute(states: UpstreamStates) -> None:
    assert await acquire(states, T0, tokens=600, tpm=1000) == 0.0
    assert await acquire(states, T0 + 10, tokens=300, tpm=1000) == 0.0
    assert await acquire(states, T0 + 10, tokens=300, tpm=1000) == pytest.approx(50.0)  # until the 600 leave
    assert await acquire(states, T0 + 60, tokens=300, tpm=1000) == 0.0
    # Larger than the whole limit: it goes alone, once the window is empty (the last 300 leave at +120).
    assert await acquire(states, T0 + 61, tokens=5000, tpm=1000) == pytest.approx(59.0)
    assert await acquire(states, T0 + 120, tokens=5000, tpm=1000) == 0.0


async def test_rpm_and_tpm_together_wait_for_the_later(states: UpstreamStates) -> None:
    assert await acquire(states, T0, tokens=10, rpm=2, tpm=1000) == 0.0
    assert await acquire(states, T0 + 20, tokens=900, rpm=2, tpm=1000) == 0.0
    # A request slot frees at +60, the tokens only at +80.
    assert await acquire(states, T0 + 30, tokens=200, rpm=2, tpm=1000) == pytest.approx(50.0)


async def admitted_in_a_fresh_minute(states: UpstreamStates, start: float, rpm: int = 10) -> int:
    count = 0
    while await acquire(states, start, rpm=rpm) == 0.0:
        count += 1
    return count


async def test_a_429_cuts_the_rate_and_ten_successes_in_a_row_raise_it_by_a_tenth(states: UpstreamStates) -> None:
    minute = iter(range(1, 100))

    async def fresh() -> int:
        return await admitted_in_a_fresh_minute(states, T0 + 61 * next(minute))

    assert await fresh() == 10
    await states.limiter.feedback(KEY, Outcome.THROTTLED)
    assert await fresh() == 2
    for _ in range(9):
        await states.limiter.feedback(KEY, Outcome.ANSWERED)
    assert await fresh() == 2
    await states.limiter.feedback(KEY, Outcome.ANSWERED)
    assert await fresh() == 3
    for _ in range(9):
        await states.limiter.feedback(KEY, Outcome.ANSWERED)
    await states.limiter.feedback(KEY, Outcome.FAILED)  # the row is broken
    await states.limiter.feedback(KEY, Outcome.ANSWERED)
    assert await fresh() == 3
    for _ in range(200):
        await states.limiter.feedback(KEY, Outcome.ANSWERED)
    assert await fresh() == 10  # never above the configured limit


async def test_backends_have_their_own_windows(states: UpstreamStates) -> None:
    assert await states.limiter.acquire("a", T0, 0, 1, 0) == 0.0
    assert await states.limiter.acquire("a", T0, 0, 1, 0) == pytest.approx(60.0)
    assert await states.limiter.acquire("c", T0, 0, 1, 0) == 0.0
