"""Authentication at the HTTP edge: with authenticators registered, every /v1/* request needs a Principal."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sanic import Request, Sanic

from ccproxy.context import PRINCIPAL
from ccproxy.errors import ProxyError
from ccproxy.interfaces import Authenticator, AuthRequest

UNAUTHENTICATED = "Authentication failed: the request carries no credentials this proxy accepts"


def auth_request(request: Request) -> AuthRequest:
    """What authenticators see: method, path, headers and the client address; never the body. The headers are Sanic's
    own case-insensitive mapping (copying them per request cost more than the key check)."""
    return AuthRequest(method=request.method, path=request.path, headers=request.headers, remote_addr=request.client_ip)


def authentication_middleware(
    authenticators: Sequence[Authenticator],
) -> Callable[[Request], Coroutine[Any, Any, None]]:
    """A request middleware asking each authenticator in turn; the first Principal is put on `request.ctx`."""
    chain = tuple(authenticators)

    async def authenticate(request: Request) -> None:
        path = request.path
        if not path.startswith("/v1/") and path != "/v1":
            return  # health (GET / and HEAD /) and plugin routes outside /v1 stay open
        PRINCIPAL.set(None)  # not the previous request's on this keep-alive connection, whatever happens next
        seen = auth_request(request)
        for authenticator in chain:
            principal = await authenticator.authenticate(seen)
            if principal is not None:
                request.ctx.principal = principal
                PRINCIPAL.set(principal)  # for stages that only see the body (a per-key model allow-list)
                return
        raise ProxyError(UNAUTHENTICATED, status=401)

    return authenticate


def install_authentication(app: Sanic, authenticators: Sequence[Authenticator]) -> None:  # type: ignore[type-arg]  # any Sanic app
    """Only called when an authenticator is registered: without one, requests pay nothing for this."""
    app.register_middleware(authentication_middleware(authenticators), "request")
