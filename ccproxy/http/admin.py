"""The gate in front of admin endpoints (usage, cache, reload): the admin key, or loopback when none is set."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any, cast

from sanic import Request

from ccproxy.errors import ProxyError
from ccproxy.keys import auth_config, digest, is_loopback, presented_key

if TYPE_CHECKING:
    from ccproxy.app import CCProxyApp

NEEDS_ADMIN_KEY = "This endpoint needs the admin key (CCPROXY_ADMIN_KEY) as x-api-key or Authorization: Bearer"
LOOPBACK_ONLY = "Admin endpoints answer only on loopback while no admin key is set: set CCPROXY_ADMIN_KEY"


def require_admin(request: Request[Any, Any]) -> None:
    """Raise unless the request may use an admin endpoint: 401 without a key, 403 with another key (a client key
    does not open admin endpoints) or, with no admin key configured, from an address that is not loopback."""
    settings = cast("CCProxyApp", request.app).ctx.settings
    admin_key = settings.admin_key or auth_config(settings).admin_key
    if admin_key is None:
        if not is_loopback(request.client_ip):
            raise ProxyError(LOOPBACK_ONLY, status=403)
        return
    presented = presented_key({name.lower(): value for name, value in request.headers.items()})
    if presented is None:
        raise ProxyError(NEEDS_ADMIN_KEY, status=401)
    if not hmac.compare_digest(digest(presented), digest(admin_key)):
        raise ProxyError(NEEDS_ADMIN_KEY, status=403)
