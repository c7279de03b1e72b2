"""Authentication at the HTTP edge: with authenticators registered, every /v1/* request needs a Principal."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sanic import Request, Sanic

from ccproxy.context import PRINCIPAL
from ccproxy.errors import ProxyError
from ccproxy.http.edge import check_request
from ccproxy.interfaces import LATER, Authenticator, AuthRequest
from ccproxy.settings import SettingsError

UNAUTHENTICATED = "Authentication failed: the request carries no credentials this proxy accepts"


def authentication_middleware(
    authenticators: Sequence[Authenticator],
) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """One request middleware: the edge's checks (ccproxy/http/edge.py), then each authenticator in turn for /v1/*;
    the first Principal is put on `request.ctx`. One function rather than a middleware and a helper coroutine: each
    layer is a measurable part of a small request; for the same reason an authenticator that can answer at once
    (`authenticate_now`) is asked without awaiting a coroutine of its own."""
    chain = tuple(authenticators)
    # Each authenticator with its synchronous answer, or None where `authenticate` is to be awaited.
    asked = tuple((each, each.authenticate_now if answers_at_once(each) else None) for each in chain)

    async def check_and_authenticate(request: Request) -> None:
        check_request(request)  # type: ignore[arg-type]  # every request of this app is a CCProxyRequest
        path = request.path
        if not path.startswith("/v1/") and path != "/v1":
            return  # health (GET / and HEAD /) and plugin routes outside /v1 stay open
        # What authenticators see: method, path, headers and the client address; never the body. The headers are
        # Sanic's own case-insensitive mapping (copying them per request cost more than the key check); the address
        # is worked out only if an authenticator asks for it.
        seen = AuthRequest(request.method, path, request.headers, lambda: request.client_ip)
        principal = None
        try:
            for authenticator, now in asked:
                answer = LATER if now is None else now(seen)
                principal = await authenticator.authenticate(seen) if answer is LATER else answer
                if principal is not None:
                    request.ctx.principal = principal
                    return
        finally:
            # For stages that only see the body (a per-key model allow-list); set whatever happened, so that it is
            # never the previous request's on this keep-alive connection. Once: each set costs a new context.
            PRINCIPAL.set(principal)
        raise ProxyError(UNAUTHENTICATED, status=401)

    return check_and_authenticate


def answers_at_once(authenticator: Authenticator) -> bool:
    """Whether `authenticate_now` speaks for this authenticator: it overrides the base class's, and nothing below
    the class that defines it overrides `authenticate` (a subclass, or the instance itself, that adds to
    `authenticate` is awaited, so what it adds is never skipped). An `async def authenticate_now` stops start-up: its
    coroutine would otherwise be taken for a Principal."""
    kind = type(authenticator)
    now = getattr(kind, "authenticate_now", None)  # registered by duck typing: it may have none
    if now is None or now is Authenticator.authenticate_now:
        return False
    if inspect.iscoroutinefunction(now):
        raise SettingsError(
            f"authenticator {kind.__name__}: authenticate_now must be a plain function (answer at once or return "
            "ccproxy.LATER); put what has to wait in async authenticate"
        )
    if "authenticate" in getattr(authenticator, "__dict__", {}):
        return False
    mro = kind.__mro__
    defines_now = next(index for index, cls in enumerate(mro) if "authenticate_now" in vars(cls))
    defines_awaited = next((index for index, cls in enumerate(mro) if "authenticate" in vars(cls)), len(mro))
    return defines_now <= defines_awaited


def install_edge(app: Sanic, authenticators: Sequence[Authenticator]) -> None:  # type: ignore[type-arg]  # any Sanic app
    """The one request middleware: the edge's checks, and, only when an authenticator is registered, the client's
    credentials."""
    if authenticators:
        app.register_middleware(authentication_middleware(authenticators), "request")
    else:
        app.register_middleware(check_request, "request")
