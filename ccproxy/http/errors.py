"""Every failure leaves as an Anthropic error body with the right status: never a traceback."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sanic import Request
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json

from ccproxy.context import REQUEST_ID
from ccproxy.errors import ProxyError, error_body
from ccproxy.state import CCProxyApp, CCProxyRequest
from ccproxy.upstream import UpstreamFailure, to_proxy_error

log = logging.getLogger("ccproxy.http")


def request_id_of(request: Request[Any, Any]) -> str:
    """This request's `req_…` id, made on first use. Every response carries it as the `request-id` header (plugin
    routes' requests included, hence any Sanic request)."""
    request_id: str | None = getattr(request.ctx, "request_id", None)
    if request_id is None:
        request_id = request.ctx.request_id = "req_" + secrets.token_hex(12)
        REQUEST_ID.set(request_id)  # for log lines (ccproxy/logs.py); the edge middleware makes it first thing
    return request_id


def public_error(request: CCProxyRequest, exc: ProxyError) -> ProxyError:
    """`exc` as the client may see it: every error body is rendered through the app's redactor."""
    return request.app.ctx.redact.public(exc)


def upstream_failure_response(request: CCProxyRequest, exc: UpstreamFailure) -> HTTPResponse:
    """An upstream failure that reached the edge unmapped (the pipeline maps its own; a plugin route may not)."""
    return proxy_error_response(request, to_proxy_error(exc))


def proxy_error_response(request: CCProxyRequest, exc: ProxyError) -> HTTPResponse:
    exc = public_error(request, exc)
    level = logging.WARNING if exc.status >= 500 else logging.INFO
    log.log(
        level,
        "%s %s %s -> %d %s: %s",
        request_id_of(request),
        request.method,
        request.path,
        exc.status,
        exc.error_type,
        exc.message,
    )
    request_id = request_id_of(request)
    return json(exc.body(request_id), status=exc.status, headers={**exc.headers, "request-id": request_id})


def sanic_error_response(request: CCProxyRequest, exc: SanicException) -> HTTPResponse:
    """Sanic's own 404/405/413/400 (e.g. body too large), reshaped for Anthropic clients."""
    status = exc.status_code
    message = str(exc) or "Request failed"
    if status == 404:
        message = f"Not found: {request.method} {request.path}"
    elif status == 413:
        limit = request.app.ctx.settings.max_request_body_bytes
        message = f"Request body is larger than this proxy's limit of {limit} bytes (MAX_REQUEST_BODY_BYTES)"
    request_id = request_id_of(request)
    public = public_error(request, ProxyError(message, status=status))
    headers = {**(getattr(exc, "headers", None) or {}), "request-id": request_id}
    return json(public.body(request_id), status=status, headers=headers)


def unexpected_error_response(request: CCProxyRequest, exc: Exception) -> HTTPResponse:
    """A bug: logged with its traceback on the server, a plain 500 api_error for the client."""
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    request_id = request_id_of(request)
    body = error_body("api_error", "Internal proxy error", request_id)
    return json(body, status=500, headers={"request-id": request_id})


def install_error_handlers(app: CCProxyApp) -> None:
    app.error_handler.add(ProxyError, proxy_error_response)
    app.error_handler.add(UpstreamFailure, upstream_failure_response)
    app.error_handler.add(SanicException, sanic_error_response)
    app.error_handler.add(Exception, unexpected_error_response)
