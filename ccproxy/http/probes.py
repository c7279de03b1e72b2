"""`GET /health` (liveness), `GET /ready` (readiness) and `GET /v1/status` (admin: process, routes, backends)."""

from __future__ import annotations

import os
import time
from typing import Any

from sanic.response import HTTPResponse, json

from ccproxy.backends import public_url
from ccproxy.http.admin import require_admin
from ccproxy.http.errors import request_id_of
from ccproxy.routing import Route
from ccproxy.state import AppState, CCProxyApp, CCProxyRequest

NOT_READY_STATUS = 503


async def liveness(request: CCProxyRequest) -> HTTPResponse:
    """The process serves requests (what a supervisor restarts on); says nothing about backends."""
    return json({"status": "ok"}, headers={"request-id": request_id_of(request)})


async def readiness(request: CCProxyRequest) -> HTTPResponse:
    """Whether requests can be served: backends configured and the cache store reachable when it is shared (503 with
    the reasons otherwise, so a load balancer sends traffic elsewhere)."""
    state = request.app.ctx
    problems: list[str] = []
    if not state.backends:
        problems.append("no backends are configured")
    cache_problem = await state.cache.ready()
    if cache_problem is not None:
        problems.append(f"cache {state.cache.name}: {cache_problem}")
    body: dict[str, Any] = {"status": "ready" if not problems else "not_ready", "backends": len(state.backends)}
    if problems:
        body["problems"] = problems
    status = 200 if not problems else NOT_READY_STATUS
    return json(body, status=status, headers={"request-id": request_id_of(request)})


async def status(request: CCProxyRequest) -> HTTPResponse:
    """What `ccproxy status` prints (admin): this process, the routes and each backend's breaker."""
    require_admin(request)
    state = request.app.ctx
    body = {
        "pid": os.getpid(),
        "version": state.health["version"],
        "core": state.health["core"],
        "address": f"{request.app.state.host or state.settings.host}:{request.app.state.port or state.settings.port}",
        "workers": state.settings.workers,
        "uptime_seconds": round(time.monotonic() - state.started_at, 1),
        "in_flight": state.gate.in_flight if state.gate is not None else None,
        "max_concurrent_requests": state.settings.max_concurrent_requests,
        "routes": [route_entry(route) for route in state.router.routes + state.router.default_routes],
        "backends": {name: await backend_entry(state, name) for name in state.backends},
    }
    return json(body, headers={"request-id": request_id_of(request)})


def route_entry(route: Route) -> dict[str, Any]:
    return {"pattern": route.pattern, "targets": [str(target) for target in route.targets]}


async def backend_entry(state: AppState, name: str) -> dict[str, Any]:
    backend = state.backends[name]
    config = backend.config
    breaker: str | None = "off"
    if config.breaker_failures > 0:
        breaker = await state.upstream_states.breaker.describe(name, time.monotonic(), config.breaker_cooldown)
    return {
        "provider": config.provider,
        "base_url": public_url(backend.provider.chat_completions_url()),
        "breaker": breaker,
        "max_connections": config.max_connections,
        "retries": config.retries,
    }


def install_probes(app: CCProxyApp) -> None:
    """The probes beside `GET /` (open, like it) and the admin status endpoint."""
    app.add_route(liveness, "/health", methods=["GET", "HEAD"], name="probe_health")
    app.add_route(readiness, "/ready", methods=["GET", "HEAD"], name="probe_ready")
    app.add_route(status, "/v1/status", methods=["GET"], name="admin_status")
