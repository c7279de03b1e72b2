"""The app started once and then sent many requests in process, as a server serves them (for property tests).

sanic-testing's `app.asgi_client` starts and stops the whole app (the server events: aiohttp sessions, plugins'
start-up) around every request: ~50 ms each on an idle machine, which would make a property test of hundreds of
examples slow, and would not show what survives from one request to the next. `served` runs the same start-up
events once, sends each request through the same ASGI transport, and runs the shutdown events at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx

from ccproxy.app import CCProxyApp

ASGI_ROOT = "http://127.0.0.1:11434"  # a loopback Host the proxy accepts (ccproxy/http/edge.py)


class ServedApp:
    """Requests to a started app; responses are httpx's."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(self, path: str, raw: bytes, headers: Mapping[str, str] | None = None) -> httpx.Response:
        sent = {"content-type": "application/json", **(headers or {})}
        return await self.client.post(path, content=raw, headers=sent)

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)


@asynccontextmanager
async def served(app: CCProxyApp) -> AsyncIterator[ServedApp]:
    """Start `app` (its server events, as sanic-testing does per request), yield a client, then stop it."""
    app.router.reset()
    app.signal_router.reset()
    await app._startup()  # the start-up sanic-testing runs; there is no public in-process one
    await app._server_event("init", "before")
    await app._server_event("init", "after")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ASGI_ROOT) as client:
            yield ServedApp(client)
    finally:
        await app._server_event("shutdown", "before")
        await app._server_event("shutdown", "after")
