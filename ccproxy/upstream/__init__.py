"""One backend's upstream as a stack: a transport (aiohttp or the lean client) wrapped by retries, a breaker, a limiter.

FakeUpstream (ccproxy.upstream.fake) is for tests and is not imported here. AiohttpUpstream is imported on first use:
aiohttp costs ~9 MB of every worker's memory, and the default transport is the lean client.
"""

from typing import TYPE_CHECKING

from ccproxy.upstream.base import Clock, Sleep, Upstream, UpstreamRequest, UpstreamResponse, UpstreamWrapper
from ccproxy.upstream.breaker import (
    Admission,
    BreakerObserver,
    BreakerState,
    CircuitBreakerUpstream,
    CircuitState,
    InMemoryBreakerState,
)
from ccproxy.upstream.errors import (
    BackendUnavailable,
    OverflowDetector,
    RateLimitExceeded,
    Redact,
    UpstreamConnectError,
    UpstreamFailure,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    can_fall_back,
    can_retry,
    is_backend_failure,
    parse_retry_after,
    status_error,
    to_proxy_error,
)
from ccproxy.upstream.lean import LeanUpstream
from ccproxy.upstream.limiter import InMemoryLimiterState, LimiterObserver, LimiterState, Outcome, RateLimitedUpstream
from ccproxy.upstream.observed import AttemptObserver, ObservedUpstream
from ccproxy.upstream.retry import RetryingUpstream
from ccproxy.upstream.stack import Resilience, ResilienceSettings, UpstreamStates, build_upstream

if TYPE_CHECKING:
    from ccproxy.upstream.http import AiohttpUpstream


def __getattr__(name: str) -> object:
    if name == "AiohttpUpstream":
        from ccproxy.upstream.http import AiohttpUpstream

        return AiohttpUpstream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Admission",
    "AiohttpUpstream",
    "AttemptObserver",
    "BackendUnavailable",
    "BreakerObserver",
    "BreakerState",
    "CircuitBreakerUpstream",
    "CircuitState",
    "Clock",
    "InMemoryBreakerState",
    "InMemoryLimiterState",
    "LeanUpstream",
    "LimiterObserver",
    "LimiterState",
    "ObservedUpstream",
    "Outcome",
    "OverflowDetector",
    "RateLimitExceeded",
    "RateLimitedUpstream",
    "Redact",
    "Resilience",
    "ResilienceSettings",
    "RetryingUpstream",
    "Sleep",
    "Upstream",
    "UpstreamConnectError",
    "UpstreamFailure",
    "UpstreamProtocolError",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamStates",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UpstreamWrapper",
    "build_upstream",
    "can_fall_back",
    "can_retry",
    "is_backend_failure",
    "parse_retry_after",
    "status_error",
    "to_proxy_error",
]
