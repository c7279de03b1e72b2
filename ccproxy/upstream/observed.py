"""ObservedUpstream: reports every attempt that reaches the backend (retries included) to one callback."""

from __future__ import annotations

import time
from collections.abc import Callable

from ccproxy.upstream.base import Clock, Upstream, UpstreamRequest, UpstreamResponse, UpstreamWrapper
from ccproxy.upstream.errors import UpstreamFailure, UpstreamStatusError

# on_attempt(request, status or None, failure or None, seconds until the status line or the failure). Called on the
# request's task; it must not block. `request.attempt` counts retries, `request.tag` is the caller's.
AttemptObserver = Callable[[UpstreamRequest, int | None, UpstreamFailure | None, float], None]


class ObservedUpstream(UpstreamWrapper):
    """The innermost layer when someone listens: one report per send that reached the transport."""

    def __init__(self, inner: Upstream, on_attempt: AttemptObserver, *, clock: Clock = time.monotonic) -> None:
        super().__init__(inner)
        self.on_attempt = on_attempt
        self.clock = clock

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        started = self.clock()
        try:
            response = await self.inner.send(request)
        except UpstreamFailure as exc:
            status = exc.status if isinstance(exc, UpstreamStatusError) else None
            self.on_attempt(request, status, exc, self.clock() - started)
            raise
        self.on_attempt(request, response.status, None, self.clock() - started)
        return response
