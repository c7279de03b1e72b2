"""Per-request context variables: the request id (on every log line) and the authenticated principal.

Sanic serves every request of a keep-alive connection in that connection's task, so both are set at the start of
each request (`request_id_of` in the edge middleware, the authentication middleware) rather than left from the last.
"""

from __future__ import annotations

from contextvars import ContextVar

from ccproxy.interfaces import Principal

REQUEST_ID: ContextVar[str | None] = ContextVar("ccproxy_request_id", default=None)
PRINCIPAL: ContextVar[Principal | None] = ContextVar("ccproxy_principal", default=None)
