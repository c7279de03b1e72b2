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
_USAGE_EVENT = b"event: message_delta\ndata: "
_ERROR_EVENT = b"event: error\ndata: "
# A chunk with one of these is the first content the client sees: the time-to-first-token mark.
_CONTENT = b"event: content_block_"
CLIENT_DISCONNECTED = "client_disconnected"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that went away before the answer


class RequestWatch:
    """Times one request and fills its record from what the client was sent; on leaving the `with` block (answered,
    failed or cancelled) hands the record to the observers."""

    __slots__ = ("observers", "record", "responded", "started")

    def __init__(
        self, observers: Observers, request: CCProxyRequest, endpoint: Literal["messages", "count_tokens"]
    ) -> None:
        self.observers = observers
        self.started = time.perf_counter()
        self.responded = False
        principal = getattr(request.ctx, "principal", None)
        self.record = RequestRecord(
            request_id=request_id_of(request),
            key_id=principal.key_id if principal is not None else None,
            endpoint=endpoint,
        )
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
            self._failed(exc)
        self.record.total_ms = (time.perf_counter() - self.started) * 1000
        self.observers.request_done(self.record)

    def _failed(self, exc: BaseException) -> None:
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
        usage = _event_data(last, _USAGE_EVENT)
        if usage is not None:
            self._usage(usage.get("usage"))
        error = _event_data(last, _ERROR_EVENT)
        if error is not None and isinstance(error.get("error"), dict):
            self.record.error_type = str(error["error"].get("type") or "api_error")

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        record = self.record
        record.input_tokens = _count(usage.get("input_tokens"))
        record.output_tokens = _count(usage.get("output_tokens"))
        record.cache_read_tokens = _count(usage.get("cache_read_input_tokens"))
        record.cache_write_tokens = _count(usage.get("cache_creation_input_tokens"))


def _event_data(chunk: bytes, head: bytes) -> dict[str, Any] | None:
    """The JSON data of the last `head` event in an encoded SSE chunk, if there is one."""
    start = chunk.rfind(head)
    if start < 0:
        return None
    start += len(head)
    end = chunk.find(b"\n", start)
    try:
        data = loads(chunk[start : end if end >= 0 else len(chunk)])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
