"""build_upstream: the layers in their order, no-op layers left out, every attempt observed."""

from __future__ import annotations

import pytest

from ccproxy.upstream import (
    AttemptObserver,
    BackendUnavailable,
    CircuitBreakerUpstream,
    ObservedUpstream,
    RateLimitedUpstream,
    Resilience,
    RetryingUpstream,
    Upstream,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamStates,
    UpstreamStatusError,
    UpstreamWrapper,
    build_upstream,
)
from ccproxy.upstream.fake import FakeUpstream
from tests.support.fake_clock import FakeClock
from tests.upstream.conftest import failing, make_request, ok, scripted


def layers(upstream: Upstream) -> list[type[Upstream]]:
    found: list[type[Upstream]] = []
    while isinstance(upstream, UpstreamWrapper):
        found.append(type(upstream))
        upstream = upstream.inner
    return [*found, type(upstream)]


def test_without_resilience_settings_the_transport_is_used_as_is() -> None:
    transport = FakeUpstream(lambda request: ok())
    plain = Resilience(retries=0, breaker_failures=0, rpm=0, tpm=0)
    assert build_upstream("b", plain, transport, UpstreamStates()) is transport


def test_layers_outer_to_inner() -> None:
    transport = FakeUpstream(lambda request: ok())
    full = Resilience(retries=2, breaker_failures=5, rpm=60, tpm=0)
    stack = build_upstream("b", full, transport, UpstreamStates(), on_attempt=lambda *report: None)
    assert layers(stack) == [
        RetryingUpstream,
        CircuitBreakerUpstream,
        RateLimitedUpstream,
        ObservedUpstream,
        FakeUpstream,
    ]
    assert layers(build_upstream("b", Resilience(), transport, UpstreamStates())) == [
        RetryingUpstream,
        CircuitBreakerUpstream,
        FakeUpstream,
    ]
    assert layers(build_upstream("b", Resilience(retries=0, tpm=1000), transport, UpstreamStates())) == [
        CircuitBreakerUpstream,
        RateLimitedUpstream,
        FakeUpstream,
    ]


async def test_open_and_close_reach_the_transport() -> None:
    transport = FakeUpstream(lambda request: ok())
    stack = build_upstream("b", Resilience(rpm=5), transport, UpstreamStates(), on_attempt=lambda *report: None)
    await stack.open()
    await stack.aclose()
    assert (transport.open_calls, transport.close_calls) == (1, 1)


Report = tuple[int, object, int | None, type[UpstreamFailure] | None, float]
# The Observed layer under the breaker, under the limiter, or on its own.
HEARING = [Resilience(), Resilience(rpm=600), Resilience(breaker_failures=0)]


def reporter(reports: list[Report]) -> AttemptObserver:
    def on_attempt(request: UpstreamRequest, status: int | None, error: UpstreamFailure | None, took: float) -> None:
        reports.append((request.attempt, request.tag, status, type(error) if error else None, took))

    return on_attempt


@pytest.mark.parametrize("settings", HEARING, ids=["under-breaker", "under-limiter", "alone"])
async def test_every_attempt_is_observed_retries_included(clock: FakeClock, settings: Resilience) -> None:
    reports: list[Report] = []
    transport = FakeUpstream(scripted(failing(503), failing(429), ok()), clock=clock, sleep=clock.sleep)
    stack = build_upstream(
        "b", settings, transport, UpstreamStates(), on_attempt=reporter(reports), clock=clock, sleep=clock.sleep
    )
    response = await clock.run(stack.send(make_request(clock, tag="req-7")))
    assert response.status == 200
    assert reports == [
        (0, "req-7", 503, UpstreamStatusError, 0.0),
        (1, "req-7", 429, UpstreamStatusError, 0.0),
        (2, "req-7", 200, None, 0.0),
    ]


async def test_a_send_the_breaker_refuses_is_no_attempt(clock: FakeClock) -> None:
    reports: list[Report] = []
    transport = FakeUpstream(lambda request: failing(503))
    stack = build_upstream(
        "b",
        Resilience(retries=0, breaker_failures=2),
        transport,
        UpstreamStates(),
        on_attempt=reporter(reports),
        clock=clock,
    )
    for _ in range(3):
        with pytest.raises(UpstreamFailure):
            await stack.send(make_request(clock))
    assert len(transport.requests) == 2  # the third was refused: the circuit is open
    assert [report[2] for report in reports] == [503, 503]


async def test_each_retry_passes_the_breaker(clock: FakeClock) -> None:
    transport = FakeUpstream(lambda request: failing(503))
    stack = build_upstream(
        "b",
        Resilience(retries=5, breaker_failures=3),
        transport,
        UpstreamStates(),
        clock=clock,
        sleep=clock.sleep,
        random=lambda: 0.0,
    )
    with pytest.raises(BackendUnavailable):
        await clock.run(stack.send(make_request(clock)))
    assert len(transport.requests) == 3  # the breaker opened on the third failure; no retry past it
