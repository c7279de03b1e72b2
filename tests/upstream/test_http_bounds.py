"""Both transports' resource bounds against real local servers (issue 11 item 7; the `transport` fixture runs each
test on AiohttpUpstream and LeanUpstream): connections per backend with a bounded wait and then ConnectionsExhausted
(529), a non-stream body cap (502), and one deadline for the whole answer that a byte trickled every 0.1 s does not
push back. Every wait is bounded here, so a transport without a bound fails instead of hanging."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ccproxy.errors import STATUS_TO_ERROR_TYPE
from ccproxy.upstream import (
    Upstream,
    UpstreamProtocolError,
    UpstreamRequest,
    UpstreamStatusError,
    UpstreamTimeout,
    to_proxy_error,
)
from ccproxy.upstream.errors import ConnectionsExhausted, can_fall_back, can_retry, is_backend_failure
from tests.upstream.conftest import Transport, redact

TRICKLE_PAUSE = 0.1
# Longer than any bound under test, shorter than a hang: what a transport without the bound runs into.
NO_BOUND = 5.0


class Server:
    """An upstream whose answers are big, trickled or held open until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.open_streams = 0
        self.most_open = 0
        app = web.Application()
        app.router.add_post("/v1/big", self.big)
        app.router.add_post("/v1/trickle", self.trickle)
        app.router.add_post("/v1/trickle-error", self.trickle_error)
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

    async def trickle_error(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500, headers={"content-type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"error": {"message": "')
        while not self.release.is_set():
            await response.write(b"x")
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


def make_upstream(transport: Transport, server: Server, **options: float) -> Upstream:
    settings = {"connect_timeout": 5.0, "read_timeout": 5.0, **options}
    return transport(
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


async def test_a_request_over_max_connections_waits_then_is_refused_with_529(
    transport: Transport, server: Server
) -> None:
    upstream = make_upstream(transport, server, limit_connections=2, connection_wait=0.2)
    await upstream.open()
    try:
        first = await upstream.send(request("/v1/held"))
        second = await upstream.send(request("/v1/held"))
        started = time.monotonic()
        with pytest.raises(ConnectionsExhausted) as refused:
            await asyncio.wait_for(upstream.send(request("/v1/held")), NO_BOUND)
        assert 0.15 < time.monotonic() - started < 2.0  # waited about connection_wait, not the connect timeout
        assert server.most_open == 2
        error = to_proxy_error(refused.value)
        assert (error.status, error.error_type) == (529, "overloaded_error")
        assert error.headers["retry-after"] == "1"
        assert "max_connections" in error.message
        # A local refusal: the next target may take it, the same backend is not hammered, the breaker learns nothing.
        assert can_fall_back(refused.value) and not can_retry(refused.value)
        assert not is_backend_failure(refused.value)
        await first.aclose()  # a finished answer frees its slot for the next request
        third = await asyncio.wait_for(upstream.send(request("/v1/held")), NO_BOUND)
        await second.aclose()
        await third.aclose()
    finally:
        await upstream.aclose()


async def test_a_waiting_request_takes_the_slot_freed_within_the_wait(transport: Transport, server: Server) -> None:
    upstream = make_upstream(transport, server, limit_connections=1, connection_wait=5.0)
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


async def test_a_non_stream_answer_over_max_body_is_refused_not_buffered(transport: Transport, server: Server) -> None:
    upstream = make_upstream(transport, server, max_body=1024 * 1024, limit_connections=1, connection_wait=0.5)
    await upstream.open()
    try:
        response = await upstream.send(request("/v1/big"))
        with pytest.raises(UpstreamProtocolError) as refused:
            await asyncio.wait_for(response.read(), NO_BOUND)
        assert refused.value.message == (
            "Upstream answer is larger than 1048576 bytes (MAX_UPSTREAM_BODY_BYTES); not read further"
        )
        assert to_proxy_error(refused.value).status == 502
        # The refused answer's connection is dropped and its slot freed: the next request gets one at once.
        again = await asyncio.wait_for(upstream.send(request("/v1/held")), NO_BOUND)
        await again.aclose()
    finally:
        await upstream.aclose()


async def test_a_body_of_exactly_max_body_is_read_whole(transport: Transport, server: Server) -> None:
    upstream = make_upstream(transport, server, max_body=4 * 1024 * 1024)
    await upstream.open()
    try:
        response = await upstream.send(request("/v1/big"))
        assert len(await asyncio.wait_for(response.read(), NO_BOUND)) == 4 * 1024 * 1024
    finally:
        await upstream.aclose()


async def test_a_trickling_stream_is_cut_at_the_request_deadline(transport: Transport, server: Server) -> None:
    # Every byte arrives well within the read timeout, so only a deadline for the whole answer ends it.
    upstream = make_upstream(transport, server, read_timeout=5.0, limit_connections=1, connection_wait=0.5)
    await upstream.open()
    try:
        started = time.monotonic()
        response = await upstream.send(request("/v1/trickle", timeout=1.0))
        received = 0

        async def drain() -> None:
            nonlocal received
            async for data in response.iter_bytes():
                received += len(data)

        with pytest.raises(UpstreamTimeout) as timed_out:
            await asyncio.wait_for(drain(), NO_BOUND)
        elapsed = time.monotonic() - started
        assert received >= 3  # it was trickling, not silent
        assert 0.9 < elapsed < 2.0, elapsed
        assert timed_out.value.phase == "read"
        assert "deadline" in timed_out.value.message
        assert STATUS_TO_ERROR_TYPE[to_proxy_error(timed_out.value).status] == "timeout_error"
        # The cut answer's slot is free again.
        again = await asyncio.wait_for(upstream.send(request("/v1/held")), NO_BOUND)
        await again.aclose()
    finally:
        await upstream.aclose()


async def test_a_trickling_non_stream_body_is_cut_at_the_request_deadline(transport: Transport, server: Server) -> None:
    upstream = make_upstream(transport, server, read_timeout=5.0)
    await upstream.open()
    try:
        started = time.monotonic()
        response = await upstream.send(request("/v1/trickle", timeout=1.0))
        with pytest.raises(UpstreamTimeout, match="deadline") as timed_out:
            await asyncio.wait_for(response.read(), NO_BOUND)
        assert timed_out.value.phase == "read"
        assert time.monotonic() - started < 2.0
    finally:
        await upstream.aclose()


async def test_a_trickling_error_body_is_cut_at_the_request_deadline(transport: Transport, server: Server) -> None:
    # The status says enough: the error comes at the deadline, with what of its body had come.
    upstream = make_upstream(transport, server, read_timeout=5.0)
    await upstream.open()
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamStatusError) as failed:
            await asyncio.wait_for(upstream.send(request("/v1/trickle-error", timeout=1.0)), NO_BOUND)
        assert failed.value.status == 500
        assert time.monotonic() - started < 2.0
    finally:
        await upstream.aclose()
