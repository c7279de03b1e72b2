"""The upstream's typed failures, which of them a retry or a fallback may cure, and their one mapping to client errors.

Library exceptions are mapped into this tree once, where they are caught (http.py); the upstream's own status is kept
on UpstreamStatusError, and `to_proxy_error` turns any failure into the status and `error.type` the client sees.
Every message is redacted by the backend's redactor when the failure is made, so the text is safe to log or return.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from ccproxy.core.error_detail import error_message
from ccproxy.core.jsoncodec import loads
from ccproxy.errors import ProxyError, UpstreamError, upstream_error

Redact = Callable[[str], str]
# The parsed error body (a dict) or its text when it is not a JSON object -> the client's message when the error
# says the prompt does not fit the model's context window, else None. ccproxy/core/overflow.py provides one.
OverflowDetector = Callable[[Any], "str | None"]
TimeoutPhase = Literal["connect", "status", "read"]

MAX_ERROR_BODY = 64 * 1024  # bytes of an error body read and kept
MAX_ERROR_MESSAGE = 2000  # characters of the upstream's own error message quoted to the client
# Statuses that say "not now" rather than "not this request": worth another try, here or on the next target.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


def no_redaction(text: str) -> str:
    return text


def never_overflow(error: Any) -> str | None:
    """The default overflow detector: no error is taken for a context overflow."""
    return None


class UpstreamFailure(Exception):
    """A call to a backend did not produce a usable answer. `message` is redacted; `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class UpstreamConnectError(UpstreamFailure):
    """No connection (refused, DNS, TLS), or the connection broke."""


class UpstreamTimeout(UpstreamFailure):
    """Nothing came in time: while connecting, while waiting for the status line, or mid-body (`phase`)."""

    def __init__(self, message: str, *, phase: TimeoutPhase) -> None:
        super().__init__(message)
        self.phase: TimeoutPhase = phase


class UpstreamStatusError(UpstreamFailure):
    """The upstream answered with status >= 400: its own `status`, its error `body` (bounded, redacted).

    `context_overflow` is the client's message when the error says the prompt does not fit the context window.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: bytes = b"",
        retry_after: float | None = None,
        context_overflow: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.body = body
        self.context_overflow = context_overflow


class UpstreamProtocolError(UpstreamFailure):
    """The answer was not what the protocol allows (malformed HTTP, wrong content type, bad JSON)."""


class BackendUnavailable(UpstreamFailure):
    """The backend's circuit breaker is open; `retry_after` is the cooldown left."""


class RateLimitExceeded(UpstreamFailure):
    """The backend's local rpm/tpm limit stays reached past the wait allowed; `retry_after` until a slot frees."""


class ConnectionsExhausted(RateLimitExceeded):
    """Every one of the backend's `max_connections` stayed in use past the wait allowed: refused here, like a local
    rate limit (falls back, not retried, says nothing to the breaker), but the client sees 529 overloaded_error."""


def parse_retry_after(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `retry-after` (seconds or an HTTP date); None if absent."""
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if date.tzinfo is None:  # RFC 9110 dates are GMT; a date without a zone ("-0000") is read as such
        date = date.replace(tzinfo=UTC)
    return max(0.0, date.timestamp() - now())


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def status_error(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    redact: Redact = no_redaction,
    detect_overflow: OverflowDetector = never_overflow,
) -> UpstreamStatusError:
    """The failure for an error answer, its message taken from an OpenAI-style, OpenRouter or plain-text body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = loads(body)
    except (ValueError, TypeError):
        parsed = None
    overflow = detect_overflow(parsed if isinstance(parsed, dict) else text)
    detail = text
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            detail = error_message(error, text)
        elif isinstance(error, str):
            detail = error
    detail = redact(detail)[:MAX_ERROR_MESSAGE] or "no details"
    redacted_text = redact(text)
    return UpstreamStatusError(
        f"Upstream error {status}: {detail}",
        status=status,
        body=body if redacted_text == text else redacted_text.encode(),
        retry_after=parse_retry_after(headers),
        context_overflow=None if overflow is None else redact(overflow),
    )


def can_retry(exc: UpstreamFailure) -> bool:
    """Whether the same backend may be tried again: the request never reached a model, or the answer says "later".

    Judges failures of `send` (before the first byte); nothing is retried once a body has started."""
    if isinstance(exc, UpstreamStatusError):
        return exc.status in TRANSIENT_STATUSES and exc.context_overflow is None
    if isinstance(exc, UpstreamTimeout):
        return exc.phase != "read"
    return isinstance(exc, UpstreamConnectError)


def can_fall_back(exc: UpstreamFailure, *, has_next: bool = True) -> bool:
    """Whether the next target of a route should be tried: what a retry could cure, a backend skipped by its
    breaker or its local limit, and a context overflow (a larger model may take the prompt). False without one."""
    if not has_next:
        return False
    if isinstance(exc, UpstreamStatusError) and exc.context_overflow is not None:
        return True
    return isinstance(exc, (BackendUnavailable, RateLimitExceeded)) or can_retry(exc)


def is_backend_failure(exc: UpstreamFailure) -> bool:
    """Whether the failure counts against the backend's health (the circuit breaker): no answer, a broken answer,
    or a 5xx. A 4xx (429 included) is an answer from a working server."""
    if isinstance(exc, UpstreamStatusError):
        return exc.status >= 500 and exc.context_overflow is None
    return isinstance(exc, (UpstreamConnectError, UpstreamTimeout, UpstreamProtocolError))


def to_proxy_error(exc: UpstreamFailure) -> ProxyError:
    """The one mapping of an upstream failure to what the client sees (status, `error.type`, `retry-after`)."""
    if isinstance(exc, UpstreamStatusError):
        if exc.context_overflow is not None:
            return UpstreamError(exc.context_overflow, status=400)
        return upstream_error(exc.status, exc.message, _retry_after_header(exc.retry_after))
    if isinstance(exc, UpstreamTimeout):
        return UpstreamError(exc.message, status=504)
    if isinstance(exc, BackendUnavailable):
        return _with_retry_after(UpstreamError(exc.message, status=503), exc.retry_after)
    if isinstance(exc, ConnectionsExhausted):
        return _with_retry_after(UpstreamError(exc.message, status=529), exc.retry_after)
    if isinstance(exc, RateLimitExceeded):
        return _with_retry_after(UpstreamError(exc.message, status=429), exc.retry_after)
    return UpstreamError(exc.message, status=502)


def _retry_after_header(seconds: float | None) -> str | None:
    return None if seconds is None else str(math.ceil(seconds))


def _with_retry_after(error: ProxyError, seconds: float | None) -> ProxyError:
    header = _retry_after_header(seconds)
    if header is not None:
        error.headers["retry-after"] = header
    return error
