"""CircuitBreakerUpstream: opens after consecutive failures, skips during the cooldown, one trial decides."""

from __future__ import annotations

import asyncio

import pytest

from ccproxy.upstream import (
    BackendUnavailable,
    CircuitBreakerUpstream,
    InMemoryBreakerState,
    RateLimitExceeded,
    UpstreamConnectError,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from tests.support.fake_clock import FakeClock
from tests.upstream.conftest import failing, make_request, ok

FAILURES = 3
COOLDOWN = 60.0


class Backend:
    """A fake backend whose answer the test switches, behind a breaker."""

    def __init__(self, clock: FakeClock, state: InMemoryBreakerState | None = None, name: str = "b") -> None:
        self.answer = ok()
        self.fake = FakeUpstream(self.handle, clock=clock, sleep=clock.sleep)
        self.breaker = CircuitBreakerUpstream(
            self.fake,
            name=name,
            failures=FAILURES,
            cooldown=COOLDOWN,
            state=state or InMemoryBreakerState(),
            clock=clock,
        )
        self.clock = clock

    def handle(self, request: UpstreamRequest) -> FakeResponse:
        return self.answer

    async def send(self) -> int | type[UpstreamFailure]:
        """The status, or the failure's class."""
        try:
            response = await self.clock.run(self.breaker.send(make_request(self.clock)))
        except UpstreamStatusError as exc:
            return exc.status
        except UpstreamFailure as exc:
            return type(exc)
        return response.status

    @property
    def reached(self) -> int:
        return len(self.fake.requests)


async def open_breaker(backend: Backend) -> None:
    backend.answer = failing(503)
    for _ in range(FAILURES):
        assert await backend.send() == 503


@pytest.mark.parametrize(
    "failure",
    [
        failing(500),
        failing(529),
        FakeResponse(error=UpstreamConnectError("refused")),
        FakeResponse(error=UpstreamTimeout("slow", phase="status")),
    ],
    ids=lambda answer: str(answer.error or answer.status),
)
async def test_opens_after_consecutive_failures_and_skips_the_backend(clock: FakeClock, failure: FakeResponse) -> None:
    backend = Backend(clock)
    backend.answer = failure
    for _ in range(FAILURES):
        assert await backend.send() != BackendUnavailable
    assert backend.reached == FAILURES
    backend.answer = ok()
    with pytest.raises(BackendUnavailable) as caught:
        await backend.breaker.send(make_request(clock))
    assert backend.reached == FAILURES  # refused without reaching the backend
    assert caught.value.retry_after == COOLDOWN
    assert "Backend b is unavailable" in caught.value.message


async def test_a_success_in_between_resets_the_count(clock: FakeClock) -> None:
    backend = Backend(clock)
    for answer in [failing(503), failing(503), ok(), failing(503), failing(503), ok()]:
        backend.answer = answer
        await backend.send()
    assert backend.reached == 6


@pytest.mark.parametrize("status", [400, 401, 404, 422, 429])
async def test_client_errors_and_429_do_not_trip_it(clock: FakeClock, status: int) -> None:
    backend = Backend(clock)
    backend.answer = failing(status)
    for _ in range(FAILURES * 3):
        assert await backend.send() == status
    assert backend.reached == FAILURES * 3


async def test_refusals_during_the_cooldown_say_how_long_is_left(clock: FakeClock) -> None:
    backend = Backend(clock)
    await open_breaker(backend)
    clock.advance(45.0)
    with pytest.raises(BackendUnavailable) as caught:
        await backend.breaker.send(make_request(clock))
    assert caught.value.retry_after == pytest.approx(15.0)


async def test_exactly_one_trial_after_the_cooldown_and_its_success_closes(clock: FakeClock) -> None:
    backend = Backend(clock)
    await open_breaker(backend)
    clock.advance(COOLDOWN)
    backend.answer = FakeResponse(delay=5.0)  # the trial takes a while; others arrive meanwhile
    trial = asyncio.ensure_future(clock.run(backend.breaker.send(make_request(clock))))
    await asyncio.sleep(0)
    results = await asyncio.gather(*(backend.send() for _ in range(3)))
    assert results == [BackendUnavailable] * 3
    assert (await trial).status == 200
    assert backend.reached == FAILURES + 1
    backend.answer = ok()
    assert [await backend.send() for _ in range(5)] == [200] * 5


async def test_a_failed_trial_opens_it_again_for_a_full_cooldown(clock: FakeClock) -> None:
    backend = Backend(clock)
    await open_breaker(backend)
    clock.advance(COOLDOWN)
    assert await backend.send() == 503  # the trial
    with pytest.raises(BackendUnavailable) as caught:
        await backend.breaker.send(make_request(clock))
    assert caught.value.retry_after == COOLDOWN
    clock.advance(COOLDOWN)
    backend.answer = ok()
    assert await backend.send() == 200


async def test_a_trial_that_says_nothing_hands_the_trial_to_the_next_request(clock: FakeClock) -> None:
    backend = Backend(clock)
    await open_breaker(backend)
    clock.advance(COOLDOWN)
    backend.answer = FakeResponse(error=RateLimitExceeded("local limit", retry_after=1.0))
    assert await backend.send() == RateLimitExceeded
    backend.answer = FakeResponse(delay=5.0)
    cancelled = asyncio.ensure_future(clock.run(backend.breaker.send(make_request(clock))))
    for _ in range(5):
        await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    backend.answer = ok()
    assert await backend.send() == 200
    assert backend.reached == FAILURES + 3


async def test_backends_sharing_a_state_have_their_own_circuits(clock: FakeClock) -> None:
    state = InMemoryBreakerState()
    first, second = Backend(clock, state, "first"), Backend(clock, state, "second")
    await open_breaker(first)
    assert await first.send() == BackendUnavailable
    assert await second.send() == 200
