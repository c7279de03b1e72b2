"""What both HTTP transports do on the wire beyond tests/upstream/test_http.py: TLS with verification and SNI, body
framings (close-delimited, gzip), big bodies both ways, per-request headers, many requests at once on one pool, and
cancellation while waiting for the status line; then what only the lean transport does (a stale pooled connection
replaced once)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import ssl
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
from aiohttp import web

from ccproxy.upstream import LeanUpstream, Upstream, UpstreamConnectError, UpstreamRequest, lean
from tests.upstream.conftest import KEY, Transport, redact, tcp_server

BIG = 1024 * 1024


def request(path: str, body: bytes = b'{"q": 1}', *, headers: dict[str, str] | None = None) -> UpstreamRequest:
    return UpstreamRequest(path, body, False, time.monotonic() + 10, headers=headers or {})


class Server:
    """An aiohttp upstream over plain TCP or TLS."""

    def __init__(self) -> None:
        app = web.Application(client_max_size=4 * BIG)
        app.router.add_post("/echo", self.echo)
        app.router.add_post("/gzip", self.gzipped)
        app.router.add_post("/big", self.big)
        self.runner = web.AppRunner(app)
        self.url = ""

    async def start(self, context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"{'https' if context else 'http'}://{host}:{port}"

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = {"length": len(body), "ok": body == bytes(range(256)) * (len(body) // 256), "headers": {}}
        answer["headers"] = {name.lower(): value for name, value in request.headers.items()}
        answer["host"] = request.host
        answer["port"] = request.transport.get_extra_info("peername")[1] if request.transport else 0
        return web.json_response(answer)

    async def gzipped(self, request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"hello " * 1000), headers={"Content-Encoding": "gzip"})

    async def big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(16):
            await response.write(b"x" * (BIG // 16))
        return response


@contextlib.asynccontextmanager
async def opened(transport: Transport, url: str, context: ssl.SSLContext | None = None) -> AsyncIterator[Upstream]:
    upstream = transport(
        url,
        {"Authorization": f"Bearer {KEY}", "X-Backend": "b"},
        connect_timeout=2,
        read_timeout=2,
        redact=redact,
        ssl_context=context,
    )
    await upstream.open()
    try:
        yield upstream
    finally:
        await upstream.aclose()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = Server()
    await running.start()
    yield running
    await running.runner.cleanup()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(authority: trustme.CA) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    running = Server()
    await running.start(context, host="localhost")
    yield running
    await running.runner.cleanup()


async def test_tls_with_a_trusted_authority_checks_the_host_name(
    transport: Transport, tls_server: Server, authority: trustme.CA
) -> None:
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with opened(transport, tls_server.url, trusting) as upstream:
        response = await upstream.send(request("/echo"))
        answer = json.loads(await response.read())
    assert answer["host"] == tls_server.url.split("//", 1)[1]
    # The certificate names localhost, not 127.0.0.1: the same server under its address fails verification.
    address = tls_server.url.replace("localhost", "127.0.0.1")
    async with opened(transport, address, trusting) as upstream:
        with pytest.raises(UpstreamConnectError, match="Upstream unreachable"):
            await upstream.send(request("/echo"))


async def test_tls_verification_refuses_an_unknown_authority(transport: Transport, tls_server: Server) -> None:
    async with opened(transport, tls_server.url) as upstream:  # the system's trust store
        with pytest.raises(UpstreamConnectError) as caught:
            await upstream.send(request("/echo"))
    assert "certificate" in caught.value.message.lower()


async def test_big_bodies_both_ways(transport: Transport, server: Server) -> None:
    body = bytes(range(256)) * (BIG // 256)
    async with opened(transport, server.url) as upstream:
        answer = json.loads(await (await upstream.send(request("/echo", body))).read())
        assert answer["length"] == BIG and answer["ok"]
        response = await upstream.send(request("/big"))
        pieces = [piece async for piece in response.iter_bytes()]
    assert b"".join(pieces) == b"x" * BIG


async def test_a_gzip_body_is_decoded(transport: Transport, server: Server) -> None:
    async with opened(transport, server.url) as upstream:
        assert await (await upstream.send(request("/gzip"))).read() == b"hello " * 1000
        streamed = [piece async for piece in (await upstream.send(request("/gzip"))).iter_bytes()]
    assert b"".join(streamed) == b"hello " * 1000


async def test_per_request_headers_replace_the_backends(transport: Transport, server: Server) -> None:
    async with opened(transport, server.url) as upstream:
        response = await upstream.send(request("/echo", headers={"x-backend": "per-request", "X-Extra": "1"}))
        headers = json.loads(await response.read())["headers"]
    assert headers["x-backend"] == "per-request" and headers["x-extra"] == "1"
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["content-length"] == str(len(b'{"q": 1}'))


async def test_finishing_a_response_again_leaves_the_next_one_on_its_connection_alone(
    transport: Transport, server: Server
) -> None:
    async with opened(transport, server.url) as upstream:
        first = await upstream.send(request("/echo"))
        pieces = first.iter_bytes()
        assert json.loads(await anext(pieces))["length"] == 8
        await first.aclose()  # the connection goes back to the pool; the body's generator is still suspended
        second = await upstream.send(request("/big"))  # on that same pooled connection
        await pieces.aclose()  # finishing the first response late (a generator closed after its response)
        await first.aclose()
        assert len(await second.read()) == BIG


async def test_many_requests_at_once_share_the_pool(transport: Transport, server: Server) -> None:
    async with opened(transport, server.url) as upstream:

        async def one(index: int) -> int:
            body = bytes(range(256)) * (index + 1)
            async with await upstream.send(request("/echo", body)) as response:
                return int(json.loads(await response.read())["length"])

        for _ in range(2):  # the second round runs on the pooled connections
            assert await asyncio.gather(*(one(i) for i in range(32))) == [256 * (i + 1) for i in range(32)]


async def test_limit_connections_caps_the_connections_in_use(transport: Transport, server: Server) -> None:
    upstream = transport(server.url, {}, connect_timeout=2, read_timeout=2, redact=redact, limit_connections=2)
    await upstream.open()
    try:

        async def port() -> int:
            async with await upstream.send(request("/echo")) as response:
                return int(json.loads(await response.read())["port"])

        ports = await asyncio.gather(*(port() for _ in range(12)))
    finally:
        await upstream.aclose()
    assert len(set(ports)) <= 2


async def test_cancelled_while_waiting_for_the_status_line_drops_the_connection(transport: Transport) -> None:
    waiting, client_gone = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(8)
        waiting.set()
        if not await reader.read(1):  # no answer is coming: the next thing is the client hanging up
            client_gone.set()

    async with tcp_server(handle) as url, opened(transport, url) as upstream:
        sending = asyncio.create_task(upstream.send(request("/hold")))
        await asyncio.wait_for(waiting.wait(), 2)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        await asyncio.wait_for(client_gone.wait(), 2)


@contextlib.asynccontextmanager
async def scripted_server(*answers: bytes | None) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw server answering its n-th request (on any connection) with answers[n]: bytes (then it keeps the
    connection), or None (it hangs up without a word). Yields the URL and the count of connections made."""
    script = list(answers)
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        while await reader.readuntil(b"\r\n\r\n"):  # until the client closes its pooled connection
            await reader.readexactly(8)  # the body of request(): {"q": 1}
            answer = script.pop(0)
            if answer is None:
                return
            writer.write(answer)
            await writer.drain()

    async with tcp_server(handle) as url:
        yield url, connections


async def test_a_close_delimited_body_ends_with_the_connection(transport: Transport) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    async with tcp_server(handle) as url, opened(transport, url) as upstream:
        assert await (await upstream.send(request("/x"))).read() == b"all of it"
        pieces = [piece async for piece in (await upstream.send(request("/x"))).iter_bytes()]
        assert b"".join(pieces) == b"all of it"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_lean_replaces_a_pooled_connection_closed_before_answering_once() -> None:
    async with scripted_server(OK, None, OK) as (url, connections), opened(LeanUpstream, url) as upstream:
        assert await (await upstream.send(request("/x"))).read() == b"ok"
        # The pooled connection is closed as the second request arrives: sent again on a new connection.
        assert await (await upstream.send(request("/x"))).read() == b"ok"
    assert connections == [2]


async def test_lean_drops_a_connection_that_sent_more_than_its_answer() -> None:
    extra = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"  # an answer nobody asked for
    async with scripted_server(extra, OK) as (url, connections), opened(LeanUpstream, url) as upstream:
        assert await (await upstream.send(request("/x"))).read() == b"ok"
        await asyncio.sleep(0.05)  # the unasked-for answer arrives while the connection is idle
        assert await (await upstream.send(request("/x"))).read() == b"ok"
    assert connections == [2]


async def test_lean_does_not_resend_on_a_new_connection_that_hangs_up() -> None:
    async with scripted_server(None) as (url, connections), opened(LeanUpstream, url) as upstream:
        with pytest.raises(UpstreamConnectError, match="Server disconnected"):
            await upstream.send(request("/x"))
    assert connections == [1]


async def test_lean_frees_a_closed_connection_without_the_cycle_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parser's callbacks are the connection's methods (a reference cycle): a connection the upstream closed
    drops its parser, so reference counting frees it at once rather than the next cycle collection."""
    made: list[weakref.ref[lean._Connection]] = []
    init = lean._Connection.__init__

    def counted(self: lean._Connection, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(lean._Connection, "__init__", counted)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    gc.collect()
    gc.disable()
    try:
        async with tcp_server(handle) as url, opened(LeanUpstream, url) as upstream:
            for _ in range(3):
                assert await (await upstream.send(request("/x"))).read() == b"ok"
            for _ in range(20):  # until every connection_lost ran
                await asyncio.sleep(0.01)
                if all(ref() is None for ref in made):
                    break
            assert len(made) == 3 and [ref() for ref in made] == [None, None, None]
    finally:
        gc.enable()
