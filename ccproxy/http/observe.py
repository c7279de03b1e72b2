"""One request's RequestRecord in the making; built only when an observer is registered."""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Any, Literal

from ccproxy.core.jsoncodec import loads
from ccproxy.errors import ProxyError
from ccproxy.events import RequestRecord
from ccproxy.http.errors import request_id_of
from ccproxy.interfaces import Principal
from ccproxy.observers import Observers
from ccproxy.state import CCProxyRequest

# The last SSE chunk of a stream ends with message_delta (with the final usage) and message_stop, or with the error
# event that ended it.
_EVENT = b"\nevent: "
_USAGE_EVENT = b"event: message_delta\ndata: "
_STOP_EVENT = b"event: message_stop\n"
_ERROR_EVENT = b"event: error\ndata: "
# A chunk with one of these is the first content the client sees: the time-to-first-token mark.
FIRST_CONTENT = b"event: content_block_"
CLIENT_DISCONNECTED = "client_disconnected"
CLIENT_CLOSED_REQUEST = 499


class Unread(Enum):
    """RequestWatch's default for the principal: read it from the request."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD  # nginx's status for a client that went away before the answer


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
        principal: Principal | Unread | None = UNREAD,
    ) -> None:
        self.observers = observers
        self.started = time.perf_counter()
        self.responded = False
        if principal is UNREAD:  # the caller had not read it (it costs a Sanic property and a getattr)
            principal = getattr(request.ctx, "principal", None)
        # Positional, in field order: measured 360 -> 216 ns per record against keywords.
        self.record = RequestRecord(
            request_id or request_id_of(request), principal.key_id if principal is not None else None
        )
        if endpoint != "messages":  # the field's default
            self.record.endpoint = endpoint
        if observers.wants_started:
            observers.request_started(self.record)

    def message(self, message: dict[str, Any]) -> None:
        """A non-stream answer: its usage."""
        self.responded = True
        self._usage(message.get("usage"))

    def streaming(self) -> None:
        """A stream's response has started (the handler relays it; see ccproxy/http/handlers.py for why there)."""
        self.responded = True

    def first_content(self) -> None:
        """The first chunk with content (FIRST_CONTENT) went out: the time to first token."""
        self.record.ttft_ms = (time.perf_counter() - self.started) * 1000

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

    def stream_end(self, last: bytes) -> None:
        """The final usage (message_delta, the event before the closing message_stop) or the error that ended the
        stream, from the last chunk sent. Searched from its end: the chunk may hold the whole stream when the
        upstream sent it in one read; only the event needed is parsed."""
        final = last.rfind(_EVENT) + 1  # the last event (0: it opens the chunk)
        if last.startswith(_ERROR_EVENT, final):
            error = _data(last, final + len(_ERROR_EVENT))
            if error is not None and isinstance(error.get("error"), dict):
                self.record.error_type = str(error["error"].get("type") or "api_error")
        elif last.startswith(_STOP_EVENT, final) and final > 0:
            delta = last.rfind(_EVENT, 0, final - 1) + 1
            if last.startswith(_USAGE_EVENT, delta):
                message = _data(last, delta + len(_USAGE_EVENT))
                if message is not None:
                    self._usage(message.get("usage"))

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


def _data(chunk: bytes, start: int) -> dict[str, Any] | None:
    """The JSON object on the data line starting at `start`, if it is one."""
    end = chunk.find(b"\n", start)
    try:
        data = loads(chunk[start : end if end >= 0 else len(chunk)])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
