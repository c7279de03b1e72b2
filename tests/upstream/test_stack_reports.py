"""What the stack tells its listeners: each state a backend's breaker is seen in (on change only) and each wait for
its rate limiter (what feeds the metrics' breaker gauge and limiter series)."""

from __future__ import annotations

import pytest

from ccproxy.upstream import (
    BackendUnavailable,
    CircuitState,
    RateLimitExceeded,
    Resilience,
    UpstreamStates,
    UpstreamStatusError,
    build_upstream,
)
from ccproxy.upstream.fake import FakeUpstream
from tests.support.fake_clock import FakeClock
from tests.upstream.conftest import failing, make_request, ok, scripted


async def test_the_breaker_reports_each_state_once_when_it_changes(clock: FakeClock) -> None:
    states: list[tuple[str, CircuitState]] = []
    transport = FakeUpstream(scripted(ok(), failing(503), failing(503), ok()))
    stack = build_upstream(
        "b",
        Resilience(retries=0, breaker_failures=2, breaker_cooldown=30),
        transport,
        UpstreamStates(),
        on_breaker=lambda backend, state: states.append((backend, state)),
        clock=clock,
        sleep=clock.sleep,
    )
    await stack.send(make_request(clock))  # closed
    for _ in range(2):  # the second failure opens the circuit
        with pytest.raises(UpstreamStatusError):
            await stack.send(make_request(clock))
    with pytest.raises(BackendUnavailable):  # refused while open: no new report
        await stack.send(make_request(clock))
    clock.advance(31)
    await stack.send(make_request(clock))  # the trial (half-open) succeeds: closed
    await stack.send(make_request(clock))
    assert states == [("b", "closed"), ("b", "open"), ("b", "half_open"), ("b", "closed")]


async def test_a_request_that_waits_for_the_limiter_is_reported_with_its_wait(clock: FakeClock) -> None:
    waits: list[tuple[str, float]] = []
    stack = build_upstream(
        "b",
        Resilience(retries=0, breaker_failures=0, rpm=1, limit_wait=90),
        FakeUpstream(lambda request: ok()),
        UpstreamStates(),
        on_limiter_wait=lambda backend, seconds: waits.append((backend, seconds)),
        clock=clock,
        sleep=clock.sleep,
    )
    await clock.run(stack.send(make_request(clock)))
    assert waits == []  # the first request fits the window
    clock.advance(15)
    await clock.run(stack.send(make_request(clock)))
    assert waits == [("b", 45.0)]


async def test_a_request_refused_without_waiting_is_not_a_wait(clock: FakeClock) -> None:
    waits: list[tuple[str, float]] = []
    stack = build_upstream(
        "b",
        Resilience(retries=0, breaker_failures=0, rpm=1, limit_wait=10),
        FakeUpstream(lambda request: ok()),
        UpstreamStates(),
        on_limiter_wait=lambda backend, seconds: waits.append((backend, seconds)),
        clock=clock,
        sleep=clock.sleep,
    )
    await clock.run(stack.send(make_request(clock)))
    with pytest.raises(RateLimitExceeded):  # room only in 60 s, more than limit_wait
        await clock.run(stack.send(make_request(clock)))
    assert waits == []
