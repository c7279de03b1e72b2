"""The typed error tree: messages from error bodies, Retry-After, what may be retried or fall back, client statuses."""

from __future__ import annotations

import json
from email.utils import formatdate
from typing import Any

import pytest

from ccproxy.upstream import (
    BackendUnavailable,
    RateLimitExceeded,
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
from tests.upstream.conftest import KEY, redact


def overflow_when_too_long(error: Any) -> str | None:
    """A stand-in for the real detector: looks at what it is given the way ccproxy/core/overflow.py does."""
    text = error["error"]["message"] if isinstance(error, dict) else error
    return "prompt is too long: 9000 tokens > 8192 maximum" if "context length" in text else None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad model", "type": "invalid_request_error"}}', "Upstream error 400: bad model"),
        (b'{"error": {"detail": "detail only"}}', "Upstream error 400: detail only"),
        (b'{"error": "a plain string"}', "Upstream error 400: a plain string"),
        (b'{"detail": "FastAPI style"}', "Upstream error 400: FastAPI style"),
        (b"Bad Gateway\n", "Upstream error 400: Bad Gateway"),
        (b"", "Upstream error 400: no details"),
        (b"\xff\xfe not utf-8", "Upstream error 400: \ufffd\ufffd not utf-8"),
    ],
)
def test_status_error_message_comes_from_the_error_body(body: bytes, message: str) -> None:
    error = status_error(400, body, {})
    assert error.message == message == str(error)
    assert error.status == 400
    assert error.body == body


def test_status_error_redacts_message_and_body() -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}"}}).encode()
    error = status_error(401, body, {}, redact=redact)
    assert KEY not in error.message
    assert KEY.encode() not in error.body
    assert json.loads(error.body)["error"]["message"] == "Incorrect API key provided: [redacted]"


def test_status_error_message_is_bounded() -> None:
    error = status_error(500, b"x" * 10_000, {})
    assert len(error.message) == len("Upstream error 500: ") + 2000


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_in_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


def test_retry_after_as_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 120, usegmt=True)}, now=lambda: now) == 120.0
    assert parse_retry_after({"retry-after": formatdate(now - 120, usegmt=True)}, now=lambda: now) == 0.0
    zoneless = formatdate(now + 60).rsplit(" ", 1)[0] + " -0000"
    assert parse_retry_after({"retry-after": zoneless}, now=lambda: now) == 60.0


def test_status_error_carries_retry_after() -> None:
    assert status_error(429, b"{}", {"retry-after": "7"}).retry_after == 7.0
    assert status_error(429, b"{}", {}).retry_after is None


def test_context_overflow_is_found_by_the_injected_detector() -> None:
    seen: list[Any] = []

    def detector(error: Any) -> str | None:
        seen.append(error)
        return overflow_when_too_long(error)

    body = b'{"error": {"message": "maximum context length is 8192 tokens"}}'
    error = status_error(400, body, {}, detect_overflow=detector)
    assert seen == [{"error": {"message": "maximum context length is 8192 tokens"}}]
    assert error.context_overflow == "prompt is too long: 9000 tokens > 8192 maximum"
    assert status_error(400, b"exceeds the context length", {}, detect_overflow=detector).context_overflow
    assert status_error(400, b'{"error": {"message": "bad"}}', {}, detect_overflow=detector).context_overflow is None
    # The default detector never sees an overflow.
    assert status_error(400, body, {}).context_overflow is None


def _status(status: int, overflow: bool = False) -> UpstreamStatusError:
    return UpstreamStatusError("x", status=status, context_overflow="prompt is too long" if overflow else None)


RETRYABLE: list[UpstreamFailure] = [
    UpstreamConnectError("refused"),
    UpstreamTimeout("t", phase="connect"),
    UpstreamTimeout("t", phase="status"),
    *(_status(status) for status in (429, 500, 502, 503, 504, 529)),
]
FINAL: list[UpstreamFailure] = [
    UpstreamTimeout("t", phase="read"),
    UpstreamProtocolError("garbled"),
    *(_status(status) for status in (400, 401, 403, 404, 413, 422, 501)),
    _status(400, overflow=True),
    _status(500, overflow=True),
]
LOCAL: list[UpstreamFailure] = [BackendUnavailable("open", retry_after=3), RateLimitExceeded("busy", retry_after=3)]


@pytest.mark.parametrize("exc", RETRYABLE, ids=repr)
def test_transient_failures_are_retried_and_fall_back(exc: UpstreamFailure) -> None:
    assert can_retry(exc)
    assert can_fall_back(exc)
    assert not can_fall_back(exc, has_next=False)


@pytest.mark.parametrize("exc", FINAL, ids=repr)
def test_final_failures_are_not_retried(exc: UpstreamFailure) -> None:
    assert not can_retry(exc)
    overflow = isinstance(exc, UpstreamStatusError) and exc.context_overflow is not None
    assert can_fall_back(exc) is overflow  # only a context overflow moves on, to a model that may take the prompt
    assert not can_fall_back(exc, has_next=False)


@pytest.mark.parametrize("exc", LOCAL, ids=repr)
def test_local_refusals_fall_back_without_retry(exc: UpstreamFailure) -> None:
    assert not can_retry(exc)
    assert can_fall_back(exc)
    assert not can_fall_back(exc, has_next=False)


def test_backend_failures_count_for_the_breaker_and_answers_do_not() -> None:
    failures = [UpstreamConnectError("x"), UpstreamTimeout("x", phase="status"), UpstreamProtocolError("x")]
    failures += [_status(status) for status in (500, 502, 503, 504, 529)]
    answers = [_status(status) for status in (400, 401, 404, 422, 429)] + [_status(500, overflow=True)]
    assert all(is_backend_failure(exc) for exc in failures)
    assert not any(is_backend_failure(exc) for exc in answers)


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (401, 401, "authentication_error"),
        (403, 403, "permission_error"),
        (404, 404, "not_found_error"),
        (408, 504, "timeout_error"),
        (413, 413, "request_too_large"),
        (422, 400, "invalid_request_error"),
        (429, 429, "rate_limit_error"),
        (500, 500, "api_error"),
        (502, 502, "api_error"),
        (503, 503, "overloaded_error"),
        (504, 504, "timeout_error"),
        (529, 529, "overloaded_error"),
    ],
)
def test_status_errors_map_through_the_status_table(status: int, client_status: int, error_type: str) -> None:
    error = to_proxy_error(status_error(status, b'{"error": {"message": "nope"}}', {}))
    assert (error.status, error.error_type) == (client_status, error_type)
    assert error.message == f"Upstream error {status}: nope"
    assert "retry-after" not in error.headers


def test_retry_after_reaches_the_client_in_whole_seconds() -> None:
    assert to_proxy_error(status_error(429, b"{}", {"retry-after": "7"})).headers == {"retry-after": "7"}
    assert to_proxy_error(status_error(503, b"{}", {"retry-after-ms": "1200"})).headers == {"retry-after": "2"}


@pytest.mark.parametrize(
    ("exc", "status", "error_type", "headers"),
    [
        (UpstreamTimeout("slow", phase="status"), 504, "timeout_error", {}),
        (UpstreamTimeout("slow", phase="read"), 504, "timeout_error", {}),
        (UpstreamConnectError("refused"), 502, "api_error", {}),
        (UpstreamProtocolError("garbled"), 502, "api_error", {}),
        (BackendUnavailable("open", retry_after=41.2), 503, "overloaded_error", {"retry-after": "42"}),
        (BackendUnavailable("probing"), 503, "overloaded_error", {}),
        (RateLimitExceeded("busy", retry_after=12.0), 429, "rate_limit_error", {"retry-after": "12"}),
        (_status(422, overflow=True), 400, "invalid_request_error", {}),
    ],
    ids=repr,
)
def test_failures_map_to_client_errors(
    exc: UpstreamFailure, status: int, error_type: str, headers: dict[str, str]
) -> None:
    error = to_proxy_error(exc)
    assert (error.status, error.error_type, error.headers) == (status, error_type, headers)
    expected = exc.context_overflow if isinstance(exc, UpstreamStatusError) else exc.message
    assert error.message == expected
