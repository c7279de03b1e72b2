"""Route handlers for the Messages API, count_tokens, health and models."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, cast

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, empty, json, raw

from ccproxy.core.jsoncodec import dumps
from ccproxy.errors import ProxyError
from ccproxy.http.edge import preflight
from ccproxy.http.errors import request_id_of

if TYPE_CHECKING:
    from ccproxy.app import CCProxyApp

log = logging.getLogger("ccproxy.http")

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# Only these client headers are shown to guardrails: never credentials.
GUARDRAIL_HEADERS = ("anthropic-version", "anthropic-beta", "user-agent", "x-app", "x-claude-code-session-id")

api = Blueprint("ccproxy_api")


def app_of(request: Request) -> CCProxyApp:
    return cast("CCProxyApp", request.app)


# `ctx_json_body`: the edge (http/edge.py) refuses bodies that are not application/json on these routes.
@api.post("/v1/messages", ctx_json_body=True)
async def messages(request: Request) -> HTTPResponse | None:
    app = app_of(request)
    pipeline = app.ctx.pipeline
    started = time.perf_counter()
    request_id = request_id_of(request)
    # Guardrails see a few client headers (never credentials); skip building them when there are none.
    headers = (
        {name: request.headers[name] for name in GUARDRAIL_HEADERS if name in request.headers}
        if pipeline.guardrails
        else {}
    )
    prepared = await pipeline.prepare(request.body, headers, request_id)
    if not prepared.stream:
        message = await pipeline.complete(prepared)
        _log_done(request, prepared.upstream_model, started, stream=False)
        return raw(dumps(message), content_type="application/json", headers={"request-id": request_id})
    upstream = await pipeline.open_stream(prepared)
    response = await request.respond(
        content_type="text/event-stream", headers={**SSE_HEADERS, "request-id": request_id}
    )
    if response is None:  # pragma: no cover — only when a handler already responded
        return None
    async for data in pipeline.stream_events(prepared, upstream):
        await response.send(data)
    await response.eof()
    _log_done(request, prepared.upstream_model, started, stream=True)
    return None


@api.post("/v1/messages/count_tokens", ctx_json_body=True)
async def count_tokens(request: Request) -> HTTPResponse:
    result = await app_of(request).ctx.pipeline.count_tokens(request.body)
    return json(result, headers={"request-id": request_id_of(request)})


async def health(request: Request) -> HTTPResponse:
    headers = {"request-id": request_id_of(request)}
    if request.method == "HEAD":
        return empty(status=200, headers=headers)
    return json(app_of(request).ctx.health, headers=headers)


@api.get("/v1/models")
async def models(request: Request) -> HTTPResponse:
    return json(app_of(request).ctx.models, headers={"request-id": request_id_of(request)})


async def unknown_endpoint(request: Request, path: str) -> HTTPResponse:
    raise ProxyError(f"Not found: {request.method} /v1/{path}", status=404)


# Claude Code probes `HEAD /` at start; unknown /v1 paths get an Anthropic-shaped 404.
api.add_route(health, "/", methods=["GET", "HEAD"])
# CORS preflights for the origins in ALLOWED_ORIGINS (the edge refuses all others).
api.add_route(preflight, "/v1/messages", methods=["OPTIONS"], name="preflight_messages")
api.add_route(preflight, "/v1/messages/count_tokens", methods=["OPTIONS"], name="preflight_count_tokens")
api.add_route(preflight, "/v1/models", methods=["OPTIONS"], name="preflight_models")
api.add_route(unknown_endpoint, "/v1/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])


def _log_done(request: Request, upstream_model: str, started: float, *, stream: bool) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s -> %s stream=%s %.0f ms",
            request_id_of(request),
            request.path,
            upstream_model,
            stream,
            (time.perf_counter() - started) * 1000,
        )
