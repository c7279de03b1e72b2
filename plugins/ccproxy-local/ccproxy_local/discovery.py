"""Reading a local server's context windows: once at start-up in the background, again whenever models are listed."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from ccproxy import Upstream, UpstreamFailure, UpstreamRequest
from ccproxy.tasks import stop_task
from ccproxy_local.windows import ContextWindows

log = logging.getLogger("ccproxy.local")

# One listing may take this long; its answer is read up to this size.
LIST_SECONDS = 10.0
LIST_MAX_BYTES = 4 * 1024 * 1024
# Pauses before the start-up attempts: at once, then soon (a server started with ccproxy is still loading its
# model), then every RETRY_EVERY seconds until the server answers once.
FIRST_DELAYS = (0.0, 2.0, 5.0, 15.0, 30.0, 60.0)
RETRY_EVERY = 300.0


Sleep = Callable[[float], Awaitable[None]]


def delays() -> Iterator[float]:
    yield from FIRST_DELAYS
    while True:
        yield RETRY_EVERY


class WindowDiscovery:
    """One backend's context windows (`windows`), read from its server by `read` and kept up to date.

    `start` runs the start-up reading as a task (never fatal: failures are logged and retried); `on_learned` is
    called whenever the windows change, so cached capabilities are asked for again.
    """

    def __init__(self, backend: str, sleep: Sleep = asyncio.sleep) -> None:
        self.backend = backend
        self.windows = ContextWindows()
        self._sleep = sleep
        self._on_learned: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def read(self, upstream: Upstream) -> ContextWindows:
        """`GET /models` through `upstream`: the listing, kept. Raises UpstreamFailure / ValueError."""
        request = UpstreamRequest(
            path="/models", body=b"", stream=False, deadline=time.monotonic() + LIST_SECONDS, method="GET"
        )
        async with await upstream.send(request) as response:
            payload = json.loads(await response.read(LIST_MAX_BYTES))
        found = ContextWindows.from_listing(payload)
        if found != self.windows:
            self.windows = found
            if self._on_learned is not None:
                self._on_learned()
        return found

    def start(self, upstream: Upstream, on_learned: Callable[[], None]) -> None:
        """Read the windows in the background until the server has answered once."""
        self._on_learned = on_learned
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._discover(upstream))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)

    async def _discover(self, upstream: Upstream) -> None:
        for attempt, delay in enumerate(delays()):
            if delay:
                await self._sleep(delay)
            try:
                async with asyncio.timeout(LIST_SECONDS):
                    found = await self.read(upstream)
            except (UpstreamFailure, TimeoutError, ValueError) as exc:
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                reason = exc.message if isinstance(exc, UpstreamFailure) else str(exc) or "no answer in time"
                log.log(level, "backend %s: cannot read context windows yet (%s); trying again", self.backend, reason)
                continue
            windows = ", ".join(f"{model}={tokens}" for model, tokens in sorted(found.by_model.items()))
            log.info("backend %s: context windows %s", self.backend, windows or "not reported (set context_window)")
            return
