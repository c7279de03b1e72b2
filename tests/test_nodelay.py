"""The first token is not held back by Nagle's algorithm on either side: the server's accepted client connections and
the lean transport's upstream connections have TCP_NODELAY (aiohttp sets it on its own: `tcp_nodelay=True`)."""

from __future__ import annotations

import asyncio
import socket
import time

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse, text

from ccproxy.app import create_app
from ccproxy.upstream import LeanUpstream, UpstreamRequest
from ccproxy.upstream.errors import no_redaction
from tests.api.conftest import make_settings
from tests.upstream.conftest import tcp_server


def nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_the_servers_client_connections_have_nodelay() -> None:
    Sanic.test_mode = True
    app = create_app(make_settings())

    async def report(request: Request) -> HTTPResponse:
        return text(str(nodelay(request.transport.get_extra_info("socket"))))

    app.add_route(report, "/_nodelay")
    try:
        _, response = app.test_client.get("/_nodelay")  # a real server on a real socket
    finally:
        Sanic.unregister_app(app)
    assert response.status == 200, response.text
    assert response.text == "1"


async def test_lean_upstream_connections_have_nodelay() -> None:
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()  # until the client closes its pooled connection

    async with tcp_server(handle) as url:
        upstream = LeanUpstream(url, {}, connect_timeout=2, read_timeout=2, redact=no_redaction)
        await upstream.open()
        try:
            response = await upstream.send(UpstreamRequest("/x", b"{}", False, time.monotonic() + 5))
            assert await response.read() == b"ok"
            pooled = [connection for pool in (upstream._pools or {}).values() for connection in pool]
            assert pooled and pooled[0].transport is not None
            seen.append(nodelay(pooled[0].transport.get_extra_info("socket")))
        finally:
            await upstream.aclose()
    assert seen == [1]
