"""The upstream interface: a request of bytes in, a response whose status line is in out (httpx's transport idea)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Any

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# Injected into the layers that wait, so tests run on a fake clock without sleeping.
Clock = Callable[[], float]  # monotonic seconds, the clock of UpstreamRequest.deadline
Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class UpstreamRequest:
    """One call to a backend; sent again on a retry as a copy with `attempt` counted up (`dataclasses.replace`).

    Treated as immutable, but not frozen: one is built per request, and a frozen dataclass costs ~1.5 µs more to
    build (each field set through object.__setattr__).
    """

    path: str  # appended to the backend's base URL, e.g. "/chat/completions"
    body: bytes
    stream: bool
    deadline: float  # time.monotonic() by which the call must have produced its status line
    tokens: int = 0  # estimated tokens (input estimate + max_tokens) for tpm limiting
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)  # per-request extras, rarely used
    attempt: int = 0  # 0 for the first try; RetryingUpstream counts up
    tag: Any = None  # opaque to the stack, handed to the attempt observer (e.g. the request id and target)
    method: str = "POST"  # GET for the few provider calls that read (listing models)


class UpstreamResponse(ABC):
    """An answer whose status line and headers are in; the body is read or streamed once, then closed.

    `headers` is case-insensitive or lower-case: look names up in lower case.
    """

    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str]) -> None:
        self.status = status
        self.headers = headers

    @abstractmethod
    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (or its first `limit` bytes, the rest dropped); the response is finished afterwards.

        Raises UpstreamTimeout (phase "read") or UpstreamConnectError when the body stops coming."""

    @abstractmethod
    def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives, once; raises UpstreamTimeout / UpstreamConnectError mid-body."""

    @abstractmethod
    async def aclose(self) -> None:
        """Finish the response: a finished body returns the connection to the pool, an unfinished one drops it,
        so the upstream sees the cancellation and stops generating. Idempotent."""

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Upstream(ABC):
    """One backend's way of sending a request; wrappers (retry, breaker, limiter) implement it around another."""

    @abstractmethod
    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Return once the status line is in. A status >= 400 raises UpstreamStatusError (body read, bounded,
        redacted); every other failure is an UpstreamFailure too — no library exception escapes."""

    async def open(self) -> None:  # noqa: B027 (a no-op by default: most layers hold nothing loop-bound)
        """Acquire loop-bound resources; called on server start, on the server's loop."""

    async def aclose(self) -> None:  # noqa: B027 (a no-op by default)
        """Release them; called on server stop."""


class UpstreamWrapper(Upstream):
    """A layer around another upstream: opening and closing pass through to the inner one."""

    def __init__(self, inner: Upstream) -> None:
        self.inner = inner

    async def open(self) -> None:
        await self.inner.open()

    async def aclose(self) -> None:
        await self.inner.aclose()
