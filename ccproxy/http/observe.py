"""One request's RequestRecord in the making; built only when an observer is registered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from sanic.response import HTTPResponse

from ccproxy.core.jsoncodec import loads
from ccproxy.errors import ProxyError
from ccproxy.events import RequestRecord
from ccproxy.http.errors import request_id_of
from ccproxy.observers import Observers
from ccproxy.state import CCProxyRequest

# The last SSE chunk of a stream carries message_delta (with the final usage) or the error event that ended it.
_EVENT = b"\nevent: "
# A chunk with one of these is the first content the client sees: the time-to-first-token mark.
_CONTENT = b"event: content_block_"
CLIENT_DISCONNECTED = "client_disconnected"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that went away before the answer


class RequestWatch:
    """Times one request and fills its record from what the client was sent; `done` (or leaving the `with` block:
    answered, failed or cancelled) hands the record to the observers, after `failed` for an exception."""

    __slots__ = ("observers", "record", "responded", "started")

    def __init__(
        self,
        observers: Observers,
        request: CCProxyRequest,
        endpoint: Literal["messages", "count_tokens"],
        request_id: str | None = None,
    ) -> None:
        self.observers = observers
        self.started = time.perf_counter()
        self.responded = False
        principal = getattr(request.ctx, "principal", None)
        self.record = RequestRecord(
            request_id=request_id or request_id_of(request),
            key_id=principal.key_id if principal is not None else None,
            endpoint=endpoint,
        )
        if observers.wants_started:
            observers.request_started(self.record)

    def message(self, message: dict[str, Any]) -> None:
        """A non-stream answer: its usage."""
        self.responded = True
        self._usage(message.get("usage"))

    async def relay(self, events: AsyncIterator[bytes], response: HTTPResponse) -> None:
        """Send a stream's bytes, noting when the first content went out and what the last chunk said."""
        self.responded = True
        last = b""
        waiting = True
        async for data in events:
            await response.send(data)
            if waiting and _CONTENT in data:
                waiting = False
                self.record.ttft_ms = (time.perf_counter() - self.started) * 1000
            last = data
        self._stream_end(last)

    def __enter__(self) -> RequestWatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        if exc is not None:
            self.failed(exc)
        self.done()

    def done(self) -> None:
        """The request is over (answered, failed or abandoned): time it and hand the record to the observers."""
        self.record.total_ms = (time.perf_counter() - self.started) * 1000
        self.observers.request_done(self.record)

    def failed(self, exc: BaseException) -> None:
        """The request ended with `exc` (before `done`): its status and error type."""
        record = self.record
        if isinstance(exc, ProxyError):
            record.status, record.error_type = exc.status, exc.error_type
        elif isinstance(exc, asyncio.CancelledError):
            record.error_type = CLIENT_DISCONNECTED
            if not self.responded:
                record.status = CLIENT_CLOSED_REQUEST
        else:
            record.status, record.error_type = 500, "api_error"

    def _stream_end(self, last: bytes) -> None:
        for name, data in _last_events(last):
            if name == b"message_delta":
                self._usage(data.get("usage"))
            elif name == b"error" and isinstance(data.get("error"), dict):
                self.record.error_type = str(data["error"].get("type") or "api_error")

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        record = self.record
        # Counts only: a bool or a float from a hostile upstream leaves the field at 0.
        value = usage.get("input_tokens")
        record.input_tokens = value if type(value) is int else 0
        value = usage.get("output_tokens")
        record.output_tokens = value if type(value) is int else 0
        value = usage.get("cache_read_input_tokens")
        record.cache_read_tokens = value if type(value) is int else 0
        value = usage.get("cache_creation_input_tokens")
        record.cache_write_tokens = value if type(value) is int else 0


def _last_events(chunk: bytes) -> list[tuple[bytes, dict[str, Any]]]:
    """The last two events of an encoded SSE chunk (a stream ends with message_delta and message_stop, or with an
    error event), each as its name and JSON data, last first. Searched from the end: the chunk may hold the whole
    stream when the upstream sent it in one read."""
    found: list[tuple[bytes, dict[str, Any]]] = []
    end = len(chunk)
    while end > 0 and len(found) < 2:
        start = chunk.rfind(_EVENT, 0, end) + 1  # 0 when the event opens the chunk (no newline before it)
        if not chunk.startswith(b"event: ", start):
            break
        event = chunk[start:end]
        name, _, rest = event[len(b"event: ") :].partition(b"\n")
        if rest.startswith(b"data: "):
            try:
                data = loads(rest[len(b"data: ") :].partition(b"\n")[0])
            except ValueError:
                data = None
            if isinstance(data, dict):
                found.append((name, data))
        end = start - 1 if start else 0
    return found
