"""The HTTP edge: the Host, Origin and Content-Type a request must carry, so no web page can spend the upstream key.

A web page in the user's browser can reach ccproxy on localhost in two ways. DNS rebinding: the attacker's name
resolves to 127.0.0.1, the page is then same-origin with ccproxy and its requests carry the attacker's name as `Host`.
A cross-site "simple" request: a POST with `Content-Type: text/plain` (or none) needs no CORS preflight, so the request
is served even though the page cannot read the answer. So, on every path except the `/` health check:

- `Host` must be `localhost`, an IP address, the name ccproxy is bound to (or the machine's name when it is bound to
  all interfaces), or a name in ALLOWED_HOSTS; `*` there turns the check off. The port is not compared: rebinding is
  defeated by the name, and an IP address can only be typed by someone who meant this server.
- an `Origin` header (sent by browsers only) must be listed in ALLOWED_ORIGINS (empty by default); preflights from a
  listed origin are answered with the CORS headers the browser needs.
- the JSON endpoints take `application/json` bodies only (parameters such as `charset` allowed): the type that forces a
  preflight, and the one Claude Code and the SDKs send.
Refusals are Anthropic errors: 403 `permission_error` for Host and Origin, 415 `invalid_request_error` for the type.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sanic.response import BaseHTTPResponse, HTTPResponse, empty

from ccproxy.errors import ProxyError
from ccproxy.http.errors import request_id_of
from ccproxy.state import CCProxyRequest

if TYPE_CHECKING:
    from ccproxy.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::"})
JSON_MEDIA_TYPE = "application/json"
ALLOWED_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE = "600"
# What a browser page allowed by ALLOWED_ORIGINS may read from an answer besides the body.
EXPOSED_HEADERS = "request-id, retry-after, x-ccproxy-backend, x-ccproxy-upstream-model"
MAX_ECHO = 100  # characters of a refused header value quoted back in the error
# The method of the empty request Sanic makes to answer an error before a request's head was read (Http1).
UNREAD_METHOD = "NONE"
# Health and readiness probes: load balancers and orchestrators probe them with whatever Host they like.
PROBE_PATHS = frozenset({"/", "/health", "/ready"})


@dataclass(frozen=True, slots=True)
class EdgePolicy:
    """The allowed Host names and Origins, computed once at start-up; `host_names` None means any Host."""

    host_names: frozenset[str] | None
    origins: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings, machine_name: str) -> EdgePolicy:
        """`machine_name` (socket.gethostname()) is accepted when ccproxy listens on every interface."""
        origins = frozenset(settings.allowed_origins)
        if "*" in settings.allowed_hosts:
            return cls(None, origins)
        names = set(LOOPBACK_NAMES)
        names.update(name.removeprefix("[").removesuffix("]") for name in settings.allowed_hosts)
        bound = settings.host.lower()
        names.add(machine_name.lower() if bound in WILDCARD_BINDS else bound)
        return cls(frozenset(names), origins)

    def host_allowed(self, host: str) -> bool:
        """Whether a `Host` header value (`name[:port]`, `[v6][:port]`) names this server."""
        if self.host_names is None:
            return True
        name = _host_name(host.lower())
        return name in self.host_names or _is_ip_address(name)


def _host_name(host: str) -> str:
    """The name of a `Host` value without its port; IPv6 literals lose their brackets."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.partition(":")[0]


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def check_request(request: CCProxyRequest) -> None:
    """Request middleware: refuse a foreign Host or Origin and a non-JSON body before any handler runs."""
    request_id_of(request)  # first thing, so every log line of this request carries its id
    if request.path in PROBE_PATHS:
        return  # the health checks: load balancers probe them with whatever Host they like; they reveal nothing
    if request.method == UNREAD_METHOD:
        return  # Sanic's stand-in for a request whose head never arrived (a timeout): its error must be answered
    headers = request.headers
    policy = request.app.ctx.edge
    host = headers.get("host", "")
    if not policy.host_allowed(host):
        raise ProxyError(
            f"Host {host[:MAX_ECHO]!r} is not served by this proxy; add the name to ALLOWED_HOSTS if it is yours "
            "(the check protects against DNS rebinding)",
            status=403,
        )
    origin = headers.get("origin")
    if origin is not None and origin.lower() not in policy.origins:
        raise ProxyError(
            f"Origin {origin[:MAX_ECHO]!r} is not allowed: browser pages may call this proxy only from the "
            "origins listed in ALLOWED_ORIGINS",
            status=403,
        )
    if request.method == "POST" and request.route is not None and getattr(request.route.ctx, "json_body", False):
        content_type = headers.get("content-type", "")
        if content_type != JSON_MEDIA_TYPE and not _is_json(content_type):
            shown = repr(content_type[:MAX_ECHO]) if content_type else "none"
            raise ProxyError(f"Content-Type must be {JSON_MEDIA_TYPE}, got {shown}", status=415)


def _is_json(content_type: str) -> bool:
    return content_type.partition(";")[0].strip().lower() == JSON_MEDIA_TYPE


def add_cors_headers(request: CCProxyRequest, response: BaseHTTPResponse) -> None:
    """Response middleware (installed only when ALLOWED_ORIGINS is set): let an allowed page read the answer."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() in request.app.ctx.edge.origins:
        response.headers["access-control-allow-origin"] = origin
        response.headers["access-control-expose-headers"] = EXPOSED_HEADERS
        response.headers["vary"] = "origin"


async def preflight(request: CCProxyRequest) -> HTTPResponse:
    """OPTIONS on an API path. check_request has already refused origins that are not allowed."""
    headers = {"allow": ALLOWED_METHODS, "request-id": request_id_of(request)}
    if "origin" in request.headers:
        headers["access-control-allow-methods"] = ALLOWED_METHODS
        headers["access-control-max-age"] = PREFLIGHT_MAX_AGE
        asked = request.headers.get("access-control-request-headers")
        if asked:
            headers["access-control-allow-headers"] = asked
    return empty(status=204, headers=headers)
