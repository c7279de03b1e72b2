"""build_upstream: one backend's stack, outer -> inner Retrying(CircuitBreaker(RateLimited(Observed(transport)))).

Layers whose settings make them no-ops are left out, so a backend with retries=0, no limits and the breaker off
sends straight through its transport.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ccproxy.upstream.base import Clock, Sleep, Upstream
from ccproxy.upstream.breaker import BreakerObserver, BreakerState, CircuitBreakerUpstream, InMemoryBreakerState
from ccproxy.upstream.limiter import InMemoryLimiterState, LimiterObserver, LimiterState, RateLimitedUpstream
from ccproxy.upstream.observed import AttemptObserver, ObservedUpstream
from ccproxy.upstream.retry import RetryingUpstream


class ResilienceSettings(Protocol):
    """The keys of a backend's table the stack reads (a `[backends.<name>]` config object has them)."""

    @property
    def retries(self) -> int: ...
    @property
    def breaker_failures(self) -> int: ...  # 0 = no breaker
    @property
    def breaker_cooldown(self) -> float: ...
    @property
    def rpm(self) -> int: ...  # 0 = unlimited
    @property
    def tpm(self) -> int: ...  # 0 = unlimited
    @property
    def limit_wait(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Resilience:
    """ResilienceSettings with the documented defaults."""

    retries: int = 2
    breaker_failures: int = 5
    breaker_cooldown: float = 60.0
    rpm: int = 0
    tpm: int = 0
    limit_wait: float = 10.0


@dataclass(frozen=True, slots=True)
class UpstreamStates:
    """The stores behind breakers and limiters, one per app, shared by all backends (keyed by backend name)."""

    breaker: BreakerState = field(default_factory=InMemoryBreakerState)
    limiter: LimiterState = field(default_factory=InMemoryLimiterState)


def build_upstream(
    name: str,
    settings: ResilienceSettings,
    transport: Upstream,
    states: UpstreamStates,
    *,
    on_attempt: AttemptObserver | None = None,
    on_breaker: BreakerObserver | None = None,
    on_limiter_wait: LimiterObserver | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    random: Callable[[], float] = random.random,
) -> Upstream:
    """The stack for backend `name` around `transport`; opening and closing it opens and closes the transport.

    `on_attempt`, `on_breaker`, `on_limiter_wait`: who hears of each attempt, breaker state change and limiter wait.
    """
    upstream = transport
    if on_attempt is not None:
        upstream = ObservedUpstream(upstream, on_attempt, clock=clock)
    if settings.rpm > 0 or settings.tpm > 0:
        upstream = RateLimitedUpstream(
            upstream,
            name=name,
            rpm=settings.rpm,
            tpm=settings.tpm,
            limit_wait=settings.limit_wait,
            state=states.limiter,
            clock=clock,
            sleep=sleep,
            on_wait=on_limiter_wait,
        )
    if settings.breaker_failures > 0:
        upstream = CircuitBreakerUpstream(
            upstream,
            name=name,
            failures=settings.breaker_failures,
            cooldown=settings.breaker_cooldown,
            state=states.breaker,
            clock=clock,
            on_state=on_breaker,
        )
    if settings.retries > 0:
        upstream = RetryingUpstream(upstream, settings.retries, clock=clock, sleep=sleep, random=random)
    return upstream
