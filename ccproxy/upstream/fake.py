"""FakeUpstream: an Upstream answered by a function, for tests of everything above the transport (no aiohttp)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccproxy.core.jsoncodec import dumps
from ccproxy.upstream.base import Clock, Sleep, Upstream, UpstreamRequest, UpstreamResponse
from ccproxy.upstream.errors import (
    OverflowDetector,
    Redact,
    UpstreamFailure,
    UpstreamTimeout,
    never_overflow,
    no_redaction,
    status_error,
)

# A body piece, a pause in seconds, or a failure raised when the body gets there.
Chunk = bytes | float | UpstreamFailure


@dataclass(slots=True)
class FakeResponse:
    """What the handler wants answered. A status >= 400 makes `send` raise UpstreamStatusError (from `body`)."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: Sequence[Chunk] | None = None  # the body in pieces (instead of `body`)
    delay: float = 0.0  # seconds before the status line (the request's deadline applies)
    error: UpstreamFailure | None = None  # raised by `send` instead of answering

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> FakeResponse:
        return cls(status, {"content-type": "application/json", **(headers or {})}, dumps(payload))


Handler = Callable[[UpstreamRequest], FakeResponse | Awaitable[FakeResponse]]


class FakeUpstream(Upstream):
    """Answers each send with `handler(request)` (sync or async; it may also raise an UpstreamFailure).

    Records what it saw: `requests`, the `responses` it returned (to check they were closed), `open_calls`,
    `close_calls`. Pauses use the injected `sleep`, the deadline the injected `clock`.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        redact: Redact = no_redaction,
        detect_overflow: OverflowDetector = never_overflow,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.handler = handler
        self.redact = redact
        self.detect_overflow = detect_overflow
        self.clock = clock
        self.sleep = sleep
        self.requests: list[UpstreamRequest] = []
        self.responses: list[FakeUpstreamResponse] = []
        self.open_calls = 0
        self.close_calls = 0

    async def open(self) -> None:
        self.open_calls += 1

    async def aclose(self) -> None:
        self.close_calls += 1

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if answer.delay:
            left = request.deadline - self.clock()
            if answer.delay >= left:
                await self.sleep(max(0.0, left))
                raise UpstreamTimeout("Upstream did not answer in time", phase="status")
            await self.sleep(answer.delay)
        if answer.error is not None:
            raise answer.error
        headers = {name.lower(): value for name, value in answer.headers.items()}
        if answer.status >= 400:
            body = answer.body or b"".join(c for c in answer.chunks or () if isinstance(c, bytes))
            raise status_error(answer.status, body, headers, redact=self.redact, detect_overflow=self.detect_overflow)
        chunks = answer.chunks if answer.chunks is not None else ([answer.body] if answer.body else [])
        response = FakeUpstreamResponse(answer.status, headers, chunks, self.sleep)
        self.responses.append(response)
        return response


class FakeUpstreamResponse(UpstreamResponse):
    """The body of a FakeResponse, played back once; `finished` when all of it was read, `closed` by aclose."""

    __slots__ = ("_chunks", "_sleep", "closed", "finished")

    def __init__(self, status: int, headers: Mapping[str, str], chunks: Sequence[Chunk], sleep: Sleep) -> None:
        super().__init__(status, headers)
        self._chunks = chunks
        self._sleep = sleep
        self.finished = False
        self.closed = False

    @property
    def dropped(self) -> bool:
        """Closed before the whole body was read (a real connection would have been dropped)."""
        return self.closed and not self.finished

    async def read(self, limit: int | None = None) -> bytes:
        parts = [data async for data in self.iter_bytes()]
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self._chunks:
                if isinstance(chunk, bytes):
                    yield chunk
                elif isinstance(chunk, UpstreamFailure):
                    raise chunk
                else:
                    await self._sleep(chunk)
            self.finished = True
        finally:
            self.closed = True

    async def aclose(self) -> None:
        self.closed = True
