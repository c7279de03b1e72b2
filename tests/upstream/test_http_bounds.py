"""AiohttpUpstream's resource bounds against real local servers (issue 11 item 7): connections per backend with a
bounded wait and then ConnectionsExhausted (529), a non-stream body cap (502), and one deadline for the whole answer
that a byte trickled every 0.1 s does not push back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ccproxy.errors import STATUS_TO_ERROR_TYPE
from ccproxy.upstream import AiohttpUpstream, UpstreamProtocolError, UpstreamRequest, UpstreamTimeout, to_proxy_error
from ccproxy.upstream.errors import ConnectionsExhausted, can_fall_back, can_retry, is_backend_failure
from tests.upstream.conftest import redact

TRICKLE_PAUSE = 0.1


class Server:
    """An upstream whose answers are big, trickled or held open until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.open_streams = 0
        self.most_open = 0
        app = web.Application()
        app.router.add_post("/v1/big", self.big)
        app.router.add_post("/v1/trickle", self.trickle)
        app.router.add_post("/v1/held", self.held)
        self.runner = web.AppRunner(app)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/json"})
        await response.prepare(request)
        for _ in range(64):  # 4 MiB, without a Content-Length
            await response.write(b" " * 65536)
        await response.write_eof()
        return response

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        while not self.release.is_set():
            await response.write(b":")
            await asyncio.sleep(TRICKLE_PAUSE)
        return response

    async def held(self, request: web.Request) -> web.StreamResponse:
        self.open_streams += 1
        self.most_open = max(self.most_open, self.open_streams)
        try:
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            await response.write(b"data: {}\n\n")
            await self.release.wait()
            with contextlib.suppress(ConnectionError):  # the client may have gone already
                await response.write_eof()
            return response
        finally:
            self.open_streams -= 1


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    found = Server()
    await found.start()
    yield found
    found.release.set()
    await found.runner.cleanup()


def transport(server: Server, **options: float) -> AiohttpUpstream:
    settings = {"connect_timeout": 5.0, "read_timeout": 5.0, **options}
    return AiohttpUpstream(
        server.url,
        {},
        connect_timeout=settings.pop("connect_timeout"),
        read_timeout=settings.pop("read_timeout"),
        redact=redact,
        limit_connections=int(settings.pop("limit_connections", 0)),
        connection_wait=settings.pop("connection_wait", 1.0),
        max_body=int(settings.pop("max_body", 32 * 1024 * 1024)),
    )


def request(path: str, timeout: float = 30.0) -> UpstreamRequest:
    return UpstreamRequest(path, b"{}", True, time.monotonic() + timeout)


async def test_a_request_over_max_connections_waits_then_is_refused_with_529(server: Server) -> None:
    upstream = transport(server, limit_connections=2, connection_wait=0.2)
    await upstream.open()
    try:
        first = await upstream.send(request("/v1/held"))
        second = await upstream.send(request("/v1/held"))
        started = time.monotonic()
        with pytest.raises(ConnectionsExhausted) as refused:
            await upstream.send(request("/v1/held"))
        assert 0.15 < time.monotonic() - started < 2.0  # waited about connection_wait, not the connect timeout
        assert server.most_open == 2
        error = to_proxy_error(refused.value)
        assert (error.status, error.error_type) == (529, "overloaded_error")
        assert error.headers["retry-after"] == "1"
        # A local refusal: the next target may take it, the same backend is not hammered, the breaker learns nothing.
        assert can_fall_back(refused.value) and not can_retry(refused.value)
        assert not is_backend_failure(refused.value)
        await first.aclose()  # a finished answer frees its slot for the next request
        third = await upstream.send(request("/v1/held"))
        await second.aclose()
        await third.aclose()
    finally:
        await upstream.aclose()


async def test_a_waiting_request_takes_the_slot_freed_within_the_wait(server: Server) -> None:
    upstream = transport(server, limit_connections=1, connection_wait=5.0)
    await upstream.open()
    try:
        first = await upstream.send(request("/v1/held"))
        waiting = asyncio.create_task(upstream.send(request("/v1/held")))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        await first.aclose()
        second = await asyncio.wait_for(waiting, 5.0)
        await second.aclose()
    finally:
        await upstream.aclose()


async def test_a_non_stream_answer_over_max_body_is_refused_not_buffered(server: Server) -> None:
    upstream = transport(server, max_body=1024 * 1024)
    await upstream.open()
    try:
        response = await upstream.send(request("/v1/big"))
        with pytest.raises(UpstreamProtocolError, match="larger than 1048576 bytes"):
            await response.read()
        assert to_proxy_error(UpstreamProtocolError("x")).status == 502
    finally:
        await upstream.aclose()


async def test_a_trickling_stream_is_cut_at_the_request_deadline(server: Server) -> None:
    # Every byte arrives well within the read timeout, so only a deadline for the whole answer ends it.
    upstream = transport(server, read_timeout=5.0)
    await upstream.open()
    try:
        started = time.monotonic()
        response = await upstream.send(request("/v1/trickle", timeout=1.0))
        received = 0
        with pytest.raises(UpstreamTimeout) as timed_out:
            async for data in response.iter_bytes():
                received += len(data)
        elapsed = time.monotonic() - started
        assert received >= 3  # it was trickling, not silent
        assert 0.9 < elapsed < 2.0, elapsed
        assert timed_out.value.phase == "read"
        assert "deadline" in timed_out.value.message
        assert STATUS_TO_ERROR_TYPE[to_proxy_error(timed_out.value).status] == "timeout_error"
    finally:
        await upstream.aclose()


async def test_a_trickling_non_stream_body_is_cut_at_the_request_deadline(server: Server) -> None:
    upstream = transport(server, read_timeout=5.0)
    await upstream.open()
    try:
        started = time.monotonic()
        response = await upstream.send(request("/v1/trickle", timeout=1.0))
        with pytest.raises(UpstreamTimeout, match="deadline"):
            await response.read()
        assert time.monotonic() - started < 2.0
    finally:
        await upstream.aclose()
