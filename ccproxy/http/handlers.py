"""Route handlers for the Messages API, count_tokens, health and models."""

from __future__ import annotations

from sanic import Blueprint
from sanic.response import HTTPResponse, empty, json, raw

from ccproxy.core.jsoncodec import dumps
from ccproxy.errors import ProxyError
from ccproxy.http.admission import gated
from ccproxy.http.edge import preflight
from ccproxy.http.errors import request_id_of
from ccproxy.http.observe import FIRST_CONTENT, RequestWatch
from ccproxy.state import CCProxyRequest

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
# Only these client headers are shown to guardrails: never credentials.
GUARDRAIL_HEADERS = ("anthropic-version", "anthropic-beta", "user-agent", "x-app", "x-claude-code-session-id")

api = Blueprint("ccproxy_api")


async def messages(request: CCProxyRequest) -> HTTPResponse | None:
    app = request.app
    pipeline = app.ctx.pipeline
    request_id = request_id_of(request)
    # Observed requests are timed and recorded in this very frame (no wrapper coroutine); unobserved ones pay a few
    # tests of `watch`.
    principal = getattr(request.ctx, "principal", None)
    observers = app.ctx.observers
    watch = None if observers is None else RequestWatch(observers, request, "messages", request_id, principal)
    try:
        # Guardrails see a few client headers (never credentials); skip building them when there are none.
        headers = (
            {name: request.headers[name] for name in GUARDRAIL_HEADERS if name in request.headers}
            if pipeline.guardrails
            else {}
        )
        # `cache-control: no-cache` / `no-store` steer the response cache (docs/cache.md); not read while it is off.
        cache_control = request.headers.get("cache-control") if pipeline.responses is not None else None
        prepared = await pipeline.prepare(
            request.body, headers, request_id, watch.record if watch else None, principal, cache_control
        )
        if not prepared.stream:
            answer = await pipeline.complete(prepared)
            if watch is not None:
                watch.message(answer.message)
            headers = {**answer.headers, "request-id": request_id}
            return raw(dumps(answer.message), content_type="application/json", headers=headers)
        upstream = await pipeline.open_stream(prepared)
        drain = app.ctx.drain
        drain.add(upstream)  # ended with an error event if shutdown's grace runs out first
        try:
            response = await request.respond(
                content_type="text/event-stream", headers={**SSE_HEADERS, **upstream.headers, "request-id": request_id}
            )
            if response is None:  # pragma: no cover — only when a handler already responded
                return None
            events = pipeline.stream_events(prepared, upstream)
            # The relay loops are here, not in a helper coroutine: a chunk whose send waits for the client resumes
            # through every coroutine frame above the loop.
            if watch is None:
                async for data in events:
                    await response.send(data)
            else:
                watch.streaming()
                last = b""
                waiting = True
                async for data in events:
                    await response.send(data)
                    if waiting and FIRST_CONTENT in data:
                        waiting = False
                        watch.first_content()
                    last = data
                watch.stream_end(last)
            await response.eof()
        finally:
            drain.streams.discard(upstream)
            await upstream.aclose()  # a client gone mid-stream: the upstream connection is dropped now, not at GC
        return None
    except BaseException as exc:
        if watch is not None:
            watch.failed(exc)
        raise
    finally:
        if watch is not None:
            watch.done()


async def count_tokens(request: CCProxyRequest) -> HTTPResponse:
    app = request.app
    request_id = request_id_of(request)
    if app.ctx.observers is None:
        result = await app.ctx.pipeline.count_tokens(request.body)
    else:
        with RequestWatch(app.ctx.observers, request, "count_tokens", request_id) as watch:
            result = await app.ctx.pipeline.count_tokens(request.body, watch.record)
    return json(result, headers={"request-id": request_id})


async def health(request: CCProxyRequest) -> HTTPResponse:
    headers = {"request-id": request_id_of(request)}
    if request.method == "HEAD":
        return empty(status=200, headers=headers)
    return json(request.app.ctx.health, headers=headers)


@api.get("/v1/models")
async def models(request: CCProxyRequest) -> HTTPResponse:
    return json(await request.app.ctx.catalog.listing(), headers={"request-id": request_id_of(request)})


async def unknown_endpoint(request: CCProxyRequest, path: str) -> HTTPResponse:
    raise ProxyError(f"Not found: {request.method} /v1/{path}", status=404)


# Added here rather than by decorator: `gated` wraps them.
# `ctx_json_body`: the edge (http/edge.py) refuses bodies that are not application/json on these routes.
# `gated`: at most MAX_CONCURRENT_REQUESTS of these at once per process (http/admission.py).
api.add_route(gated(messages, "messages"), "/v1/messages", methods=["POST"], ctx_json_body=True)
api.add_route(gated(count_tokens, "count_tokens"), "/v1/messages/count_tokens", methods=["POST"], ctx_json_body=True)
# Claude Code probes `HEAD /` at start; unknown /v1 paths get an Anthropic-shaped 404.
api.add_route(health, "/", methods=["GET", "HEAD"])
# CORS preflights for the origins in ALLOWED_ORIGINS (the edge refuses all others).
api.add_route(preflight, "/v1/messages", methods=["OPTIONS"], name="preflight_messages")
api.add_route(preflight, "/v1/messages/count_tokens", methods=["OPTIONS"], name="preflight_count_tokens")
api.add_route(preflight, "/v1/models", methods=["OPTIONS"], name="preflight_models")
api.add_route(unknown_endpoint, "/v1/<path:path>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
