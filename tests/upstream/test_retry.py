"""RetryingUpstream: transient failures are tried again with backoff, Retry-After and the deadline respected."""

from __future__ import annotations

import pytest

from ccproxy.upstream import (
    RetryingUpstream,
    UpstreamConnectError,
    UpstreamRequest,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from tests.support.fake_clock import FakeClock
from tests.upstream.conftest import failing, make_request, ok, scripted


def retrying(fake: FakeUpstream, clock: FakeClock, retries: int = 2, jitter: float = 0.5) -> RetryingUpstream:
    return RetryingUpstream(fake, retries, clock=clock, sleep=clock.sleep, random=lambda: jitter)


@pytest.mark.parametrize(
    "first",
    [
        failing(429),
        failing(500),
        failing(502),
        failing(503),
        failing(504),
        failing(529),
        FakeResponse(error=UpstreamConnectError("refused")),
        FakeResponse(error=UpstreamTimeout("slow", phase="connect")),
        FakeResponse(error=UpstreamTimeout("slow", phase="status")),
    ],
    ids=lambda answer: str(answer.error or answer.status),
)
async def test_transient_failure_is_retried(clock: FakeClock, first: FakeResponse) -> None:
    fake = FakeUpstream(scripted(first, ok()))
    response = await clock.run(retrying(fake, clock).send(make_request(clock)))
    assert response.status == 200
    assert [request.attempt for request in fake.requests] == [0, 1]
    assert clock.sleeps == [0.25]  # jitter 0.5 of the first backoff step (0.5 s)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_client_errors_are_not_retried(clock: FakeClock, status: int) -> None:
    fake = FakeUpstream(scripted(failing(status), ok()))
    with pytest.raises(UpstreamStatusError):
        await clock.run(retrying(fake, clock).send(make_request(clock)))
    assert len(fake.requests) == 1


async def test_context_overflow_is_not_retried(clock: FakeClock) -> None:
    fake = FakeUpstream(scripted(failing(500, "too long"), ok()), detect_overflow=lambda error: "prompt is too long")
    with pytest.raises(UpstreamStatusError):
        await clock.run(retrying(fake, clock).send(make_request(clock)))
    assert len(fake.requests) == 1


async def test_attempts_are_bounded_by_retries_and_the_last_failure_is_raised(clock: FakeClock) -> None:
    fake = FakeUpstream(scripted(failing(503, "first"), failing(503, "second"), failing(502, "last")))
    with pytest.raises(UpstreamStatusError) as caught:
        await clock.run(retrying(fake, clock, retries=2).send(make_request(clock)))
    assert caught.value.message == "Upstream error 502: last"
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("jitter", "expected"),
    [
        (1.0, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]),  # the top of each step: base * 2**n, capped at 8 s
        (0.0, [0.0] * 6),
        (0.25, [0.125, 0.25, 0.5, 1.0, 2.0, 2.0]),
    ],
)
async def test_backoff_is_exponential_with_full_jitter_and_a_cap(
    clock: FakeClock, jitter: float, expected: list[float]
) -> None:
    fake = FakeUpstream(lambda request: failing(503))
    with pytest.raises(UpstreamStatusError):
        await clock.run(retrying(fake, clock, retries=6, jitter=jitter).send(make_request(clock)))
    assert clock.sleeps == expected


async def test_retry_after_is_honoured_instead_of_backoff(clock: FakeClock) -> None:
    fake = FakeUpstream(scripted(failing(429, headers={"Retry-After": "7"}), ok()))
    started = clock()
    await clock.run(retrying(fake, clock).send(make_request(clock)))
    assert clock.sleeps == [7.0]
    assert clock() - started == 7.0


async def test_retry_after_beyond_the_cap_is_not_waited_for(clock: FakeClock) -> None:
    fake = FakeUpstream(scripted(failing(429, headers={"Retry-After": "31"}), ok()))
    with pytest.raises(UpstreamStatusError) as caught:
        await clock.run(retrying(fake, clock).send(make_request(clock)))
    assert caught.value.retry_after == 31.0  # goes up for the next target or the client's retry-after
    assert (len(fake.requests), clock.sleeps) == (1, [])
    at_the_cap = FakeUpstream(scripted(failing(429, headers={"Retry-After": "30"}), ok()))
    await clock.run(retrying(at_the_cap, clock).send(make_request(clock)))
    assert clock.sleeps == [30.0]


async def test_no_wait_that_would_end_past_the_deadline(clock: FakeClock) -> None:
    fake = FakeUpstream(scripted(failing(429, headers={"Retry-After": "7"}), ok()))
    with pytest.raises(UpstreamStatusError):
        await clock.run(retrying(fake, clock).send(make_request(clock, timeout=7.0)))
    assert (len(fake.requests), clock.sleeps) == (1, [])
    backoff = FakeUpstream(scripted(failing(503), ok()))
    with pytest.raises(UpstreamStatusError):
        await clock.run(retrying(backoff, clock, jitter=1.0).send(make_request(clock, timeout=0.4)))
    assert len(backoff.requests) == 1


async def test_time_spent_in_attempts_counts_against_the_deadline(clock: FakeClock) -> None:
    slow_failure = FakeResponse(delay=9.6, error=UpstreamConnectError("reset"))
    fake = FakeUpstream(scripted(slow_failure, ok()), clock=clock, sleep=clock.sleep)
    with pytest.raises(UpstreamConnectError):
        # 9.6 s spent in the first attempt + 0.5 s backoff would pass the 10 s deadline.
        await clock.run(retrying(fake, clock, jitter=1.0, retries=2).send(make_request(clock, timeout=10.0)))
    assert len(fake.requests) == 1


async def test_nothing_is_retried_after_the_first_byte(clock: FakeClock) -> None:
    fake = FakeUpstream(lambda request: FakeResponse(chunks=[b"data: 1\n\n", UpstreamConnectError("lost")]))
    response = await clock.run(retrying(fake, clock).send(make_request(clock)))
    with pytest.raises(UpstreamConnectError):
        async for _ in response.iter_bytes():
            pass
    assert len(fake.requests) == 1


async def test_the_request_is_resent_unchanged_but_for_its_attempt_number(clock: FakeClock) -> None:
    fake = FakeUpstream(scripted(failing(503), failing(503), ok()))
    request = make_request(clock, tokens=12, tag="req-1")
    await clock.run(retrying(fake, clock).send(request))
    assert fake.requests[0] is request
    assert fake.requests[2] == UpstreamRequest(
        request.path, request.body, False, request.deadline, 12, attempt=2, tag="req-1"
    )
