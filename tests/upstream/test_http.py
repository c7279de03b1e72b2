"""Both transports (AiohttpUpstream and LeanUpstream, the `transport` fixture) against real local servers: answers,
error statuses, timeouts, broken connections, cancellation, connection reuse and redaction — and never a library's
exception."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate

import pytest
from aiohttp import web

from ccproxy.upstream import (
    Upstream,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamStatusError,
    UpstreamTimeout,
)
from ccproxy.upstream.errors import MAX_ERROR_BODY
from tests.upstream.conftest import KEY, Transport, redact


def request(
    path: str, *, timeout: float = 10.0, stream: bool = False, headers: dict[str, str] | None = None
) -> UpstreamRequest:
    return UpstreamRequest(path, b'{"q": 1}', stream, time.monotonic() + timeout, headers=headers or {})


class Server:
    """A local upstream whose routes answer the way the tests need."""

    def __init__(self) -> None:
        self.client_gone = asyncio.Event()
        self.release = asyncio.Event()  # ends the handlers that wait
        app = web.Application()
        app.router.add_post("/v1/echo", self.echo)
        app.router.add_post("/v1/status/{status}", self.status)
        app.router.add_post("/v1/big-error", self.big_error)
        app.router.add_post("/v1/slow", self.slow)
        app.router.add_post("/v1/stall", self.stall)
        app.router.add_post("/v1/endless", self.endless)
        self.runner = web.AppRunner(app)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self.release.set()
        await self.runner.cleanup()

    async def echo(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.json_response(
            {
                "body": (await request.read()).decode(),
                "authorization": request.headers.get("authorization"),
                "extra": request.headers.get("x-extra"),
                "peer_port": peer[1] if peer else None,
            }
        )

    async def status(self, request: web.Request) -> web.Response:
        status = int(request.match_info["status"])
        headers = {"Retry-After": request.query["retry_after"]} if "retry_after" in request.query else {}
        error = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}
        return web.json_response(error, status=status, headers=headers)

    async def big_error(self, request: web.Request) -> web.Response:
        return web.Response(status=500, body=b"x" * (4 * MAX_ERROR_BODY))

    async def slow(self, request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 5)
        return web.json_response({})

    async def stall(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 5)
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            while not self.release.is_set():
                await response.write(b"data: more\n\n")
                await asyncio.sleep(0.01)
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError is one: the client went away
            self.client_gone.set()
        return response


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = Server()
    await running.start()
    yield running
    await running.stop()


@contextlib.asynccontextmanager
async def make_upstream(
    transport: Transport, url: str, *, connect_timeout: float = 2.0, read_timeout: float = 2.0
) -> AsyncIterator[Upstream]:
    upstream = transport(
        url,
        {"Authorization": f"Bearer {KEY}"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        redact=redact,
    )
    await upstream.open()
    try:
        yield upstream
    finally:
        await upstream.aclose()


@pytest.fixture
async def upstream(transport: Transport, server: Server) -> AsyncIterator[Upstream]:
    async with make_upstream(transport, server.url + "/v1/") as opened:
        yield opened


@contextlib.asynccontextmanager
async def raw_server(answer: bytes | None) -> AsyncIterator[str]:
    """A TCP server that reads the request, writes `answer` (None: nothing) and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read(65536)
            if answer is not None:
                writer.write(answer)
                await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    tcp = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{tcp.sockets[0].getsockname()[1]}"
    finally:
        tcp.close()
        await tcp.wait_closed()


@contextlib.contextmanager
def unaccepting_port() -> Iterator[int]:
    """A listening port whose accept queue is full: new connections hang in the handshake (Linux drops the SYN)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_sends_body_and_headers_and_reads_the_answer(upstream: Upstream) -> None:
    response = await upstream.send(request("/echo", headers={"X-Extra": "yes"}))
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    answer = json.loads(await response.read())
    assert answer["body"] == '{"q": 1}'
    assert answer["authorization"] == f"Bearer {KEY}"
    assert answer["extra"] == "yes"


async def test_pooled_connection_is_reused_after_a_finished_body(upstream: Upstream) -> None:
    ports = []
    for _ in range(3):
        async with await upstream.send(request("/echo")) as response:
            ports.append(json.loads(await response.read())["peer_port"])
    assert len(set(ports)) == 1


async def test_bounded_read_of_an_unfinished_body_drops_the_connection(server: Server, upstream: Upstream) -> None:
    response = await upstream.send(request("/endless", stream=True))
    assert await response.read(limit=5) == b"data:"
    await asyncio.wait_for(server.client_gone.wait(), 2)


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500, 503])
async def test_error_status_raises_with_the_upstream_status_and_body(upstream: Upstream, status: int) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        await upstream.send(request(f"/status/{status}"))
    error = caught.value
    assert error.status == status
    assert error.message == f"Upstream error {status}: Incorrect API key provided: [redacted]"
    assert json.loads(error.body)["error"]["message"] == "Incorrect API key provided: [redacted]"
    assert KEY not in str(error) and KEY.encode() not in error.body


async def test_retry_after_seconds_and_date(upstream: Upstream) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        await upstream.send(request("/status/429?retry_after=7"))
    assert caught.value.retry_after == 7.0
    date = formatdate(time.time() + 90, usegmt=True)
    with pytest.raises(UpstreamStatusError) as caught:
        await upstream.send(request(f"/status/503?retry_after={date}"))
    assert caught.value.retry_after == pytest.approx(90, abs=2)


async def test_error_bodies_are_read_bounded(upstream: Upstream) -> None:
    with pytest.raises(UpstreamStatusError) as caught:
        await upstream.send(request("/big-error"))
    assert len(caught.value.body) == MAX_ERROR_BODY
    response = await upstream.send(request("/echo"))  # the pool is still healthy
    assert response.status == 200
    await response.aclose()


async def test_connection_refused(transport: Transport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_upstream(transport, f"http://127.0.0.1:{port}/v1") as upstream:
        with pytest.raises(UpstreamConnectError) as caught:
            await upstream.send(request("/echo"))
    assert f"Upstream unreachable (127.0.0.1:{port})" in caught.value.message


async def test_connect_timeout(transport: Transport) -> None:
    with unaccepting_port() as port:
        async with make_upstream(transport, f"http://127.0.0.1:{port}", connect_timeout=0.2) as upstream:
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as caught:
                await upstream.send(request("/echo"))
    assert caught.value.phase == "connect"
    assert time.monotonic() - started < 1.5


async def test_timeout_before_the_status_line(transport: Transport, server: Server) -> None:
    async with make_upstream(transport, server.url + "/v1", read_timeout=0.2) as upstream:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as caught:
            await upstream.send(request("/slow"))
    assert caught.value.phase == "status"
    assert time.monotonic() - started < 1.5


async def test_the_deadline_bounds_the_wait_for_the_status_line(upstream: Upstream) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        await upstream.send(request("/slow", timeout=0.2))  # read_timeout is 2 s
    assert caught.value.phase == "status"
    assert time.monotonic() - started < 1.5
    with pytest.raises(UpstreamTimeout):
        await upstream.send(request("/echo", timeout=-1.0))


async def test_read_timeout_mid_body(transport: Transport, server: Server) -> None:
    async with make_upstream(transport, server.url + "/v1", read_timeout=0.2) as upstream:
        response = await upstream.send(request("/stall"))
        received = []
        with pytest.raises(UpstreamTimeout) as caught:
            async for data in response.iter_bytes():
                received.append(data)
    assert caught.value.phase == "read"
    assert b"".join(received) == b"first"


async def test_read_timeout_in_read(transport: Transport, server: Server) -> None:
    async with make_upstream(transport, server.url + "/v1", read_timeout=0.2) as upstream:
        response = await upstream.send(request("/stall"))
        with pytest.raises(UpstreamTimeout):
            await response.read()


async def test_cancelling_the_reader_closes_the_connection(server: Server, upstream: Upstream) -> None:
    response = await upstream.send(request("/endless", stream=True))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in response.iter_bytes():
            first.set()

    reader = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await asyncio.wait_for(server.client_gone.wait(), 2)


async def test_closing_an_unfinished_response_closes_the_connection(server: Server, upstream: Upstream) -> None:
    response = await upstream.send(request("/endless", stream=True))
    async for _ in response.iter_bytes():
        break
    await response.aclose()
    await asyncio.wait_for(server.client_gone.wait(), 2)


async def test_server_hanging_up_before_answering(transport: Transport) -> None:
    async with raw_server(None) as url, make_upstream(transport, url) as upstream:
        with pytest.raises(UpstreamConnectError):
            await upstream.send(request("/x"))


async def test_connection_lost_mid_body(transport: Transport) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"
    async with raw_server(answer) as url, make_upstream(transport, url) as upstream:
        response = await upstream.send(request("/x"))
        with pytest.raises(UpstreamConnectError) as caught:
            await response.read()
        assert caught.value.message.startswith("Upstream connection lost")
        response = await upstream.send(request("/x"))
        with pytest.raises(UpstreamConnectError):
            async for _ in response.iter_bytes():
                pass


async def test_malformed_answer_is_a_protocol_error_with_the_key_redacted(transport: Transport) -> None:
    async with raw_server(f"HTTP/1.1 2x0 {KEY}\r\n\r\n".encode()) as url, make_upstream(transport, url) as upstream:
        with pytest.raises(UpstreamProtocolError) as caught:
            await upstream.send(request("/x"))
    assert "[redacted]" in caught.value.message  # aiohttp quotes the offending line
    assert KEY not in caught.value.message


async def test_used_before_open_is_a_wiring_error(transport: Transport) -> None:
    upstream = transport("http://127.0.0.1:1", {}, connect_timeout=1, read_timeout=1, redact=redact)
    with pytest.raises(RuntimeError, match="before open"):
        await upstream.send(request("/x"))
    await upstream.open()
    await upstream.open()  # twice is harmless
    await upstream.aclose()
    await upstream.aclose()
