"""Shared pieces of the upstream-stack tests: a fake clock, requests, and canned answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ccproxy.upstream import AiohttpUpstream, LeanUpstream, UpstreamRequest
from ccproxy.upstream.fake import FakeResponse
from tests.support.fake_clock import FakeClock

CHAT = "/chat/completions"
KEY = "sk-test-0123456789abcdefSECRET"


def redact(text: str) -> str:
    """The backend's redactor, as far as these tests need one."""
    return text.replace(KEY, "[redacted]")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_request(clock: FakeClock, *, timeout: float = 600.0, **fields: Any) -> UpstreamRequest:
    """A request whose deadline is `timeout` seconds from the fake clock's now."""
    return UpstreamRequest(CHAT, b'{"model":"m"}', False, clock() + timeout, **fields)


def ok() -> FakeResponse:
    return FakeResponse.json({"id": "chatcmpl-1", "choices": []})


def failing(status: int, message: str = "boom", headers: dict[str, str] | None = None) -> FakeResponse:
    return FakeResponse.json({"error": {"message": message}}, status=status, headers=headers)


def scripted(*answers: FakeResponse) -> Callable[[UpstreamRequest], FakeResponse]:
    """A handler giving `answers` in order, then the last one again and again."""
    queue = list(answers)

    def handler(request: UpstreamRequest) -> FakeResponse:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


Transport = type[AiohttpUpstream] | type[LeanUpstream]


@pytest.fixture(params=[AiohttpUpstream, LeanUpstream], ids=["aiohttp", "lean"])
def transport(request: pytest.FixtureRequest) -> Transport:
    """Each HTTP transport in turn: the tests of what a transport does run on both while both exist."""
    transport: Transport = request.param
    return transport


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(handle: Handler) -> AsyncIterator[str]:
    """A local TCP server running `handle` per connection (the writer is closed after it); yields its http:// URL. On
    exit every handler has finished, so none is left half-done for the test's closed loop to collect (and warn)."""
    handlers: set[asyncio.Task[Any]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what the tests do to it
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
