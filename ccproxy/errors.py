"""Proxy exceptions and their Anthropic error bodies and HTTP status codes (wire.md 4.5)."""

from __future__ import annotations

from typing import Any

# HTTP status -> Anthropic error.type. Statuses not listed fall back by class (4xx/5xx).
STATUS_TO_ERROR_TYPE: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Upstream statuses the client should see as something else. 422 is what OpenAI-compatible servers
# (vLLM, Mistral) use for request validation; Anthropic clients know it as 400. 408 is the upstream
# timing out our request, which the client sees as a gateway timeout.
UPSTREAM_STATUS_REMAP: dict[int, int] = {422: 400, 408: 504}


def error_type_for_status(status: int) -> str:
    """Anthropic `error.type` for an HTTP status."""
    if status in STATUS_TO_ERROR_TYPE:
        return STATUS_TO_ERROR_TYPE[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """The Anthropic error envelope."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


class ProxyError(Exception):
    """An error that reaches the client as an Anthropic error body with `status`."""

    status: int = 500
    error_type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
            self.error_type = error_type or error_type_for_status(status)
        elif error_type is not None:
            self.error_type = error_type
        self.headers: dict[str, str] = dict(headers or {})

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return error_body(self.error_type, self.message, request_id)


class InvalidRequestError(ProxyError):
    """The client's request is malformed or asks for something we cannot do (400)."""

    status = 400
    error_type = "invalid_request_error"


class NotFoundError(ProxyError):
    status = 404
    error_type = "not_found_error"


class RequestTooLargeError(ProxyError):
    status = 413
    error_type = "request_too_large"


class UpstreamError(ProxyError):
    """The upstream answered with an error, timed out, or could not be reached."""


def upstream_error(status: int, message: str, retry_after: str | None = None) -> UpstreamError:
    """Map an upstream HTTP error to the status and type the Anthropic client should see."""
    client_status = UPSTREAM_STATUS_REMAP.get(status, status)
    if client_status < 400:
        client_status = 502
    headers = {"retry-after": retry_after} if retry_after else None
    return UpstreamError(message, status=client_status, headers=headers)
