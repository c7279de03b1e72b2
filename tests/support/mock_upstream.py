"""A real local HTTP/1.1 upstream for the in-process API tests, scripted per request path.

It listens on 127.0.0.1 (port 0) in the test's event loop, where sanic-testing's ASGI client drives the app, so
either transport (the lean client or aiohttp) reaches it through real sockets. The script: `post(url, status=,
payload= | body=, headers=, content_type=, exception=, repeat=, callback=)` queues answers per path, in order
(`repeat=True`: that answer forever; `callback(received) -> Answer`, sync or async, answers from the request);
`requests` records what arrived (`Received`: method, path, lower-case headers, body, `.json`).

Network faults are real: `exception=ConnectionError(...)` drops the connection without answering (the client sees a
server that disconnected), `exception=TimeoutError()` keeps it open without answering until the client gives up (use
a short REQUEST_TIMEOUT). A request with no answer queued gets 599 and a message naming it, so a test fails loudly.
Answers keep the connection alive (both clients pool); event-stream bodies go out chunked, one chunk per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

UNMATCHED_STATUS = 599
MAX_HEAD_BYTES = 64 * 1024
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}


@dataclass(frozen=True)
class Received:
    """One request as it arrived: `headers` with lower-case names, `path` with its query string."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    """What the upstream sends back: a status, a body (`payload` as JSON, or `body` as given) and headers; or a fault
    (`exception`: a ConnectionError drops the connection, a TimeoutError never answers)."""

    status: int = 200
    payload: Any = None
    body: str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    exception: BaseException | type[BaseException] | None = None

    def data(self) -> bytes:
        if self.payload is not None:
            return json.dumps(self.payload).encode()
        if isinstance(self.body, str):
            return self.body.encode()
        return self.body or b""


Callback = Callable[[Received], Answer | Awaitable[Answer]]


@dataclass
class _Scripted:
    answer: Answer | None
    callback: Callback | None
    repeat: bool


class _Dropped(Exception):
    """The scripted fault: close the connection without answering."""


class MockUpstream:
    """The server and its script; `base_url` is what the app is built with (`chat_url`: its chat completions)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.unmatched: list[Received] = []
        self._script: dict[tuple[str, str], deque[_Scripted]] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.origin = ""

    @property
    def base_url(self) -> str:
        return self.origin + "/v1"

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.origin = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):  # held (timeout) and idle keep-alive connections
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ------------------------------------------------------------------ scripting

    def post(
        self,
        url: str,
        *,
        status: int = 200,
        payload: Any = None,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        exception: BaseException | type[BaseException] | None = None,
        repeat: bool = False,
        callback: Callback | None = None,
    ) -> None:
        """Queue the next answer to a POST to `url` (an address on this server)."""
        self.add("POST", url, Answer(status, payload, body, headers or {}, content_type, exception), repeat, callback)

    def add(
        self, method: str, url: str, answer: Answer | None, repeat: bool = False, callback: Callback | None = None
    ) -> None:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            raise ValueError(f"{url!r} is not on the mock upstream ({self.origin}): build the app with its base_url")
        if answer is not None and answer.exception is not None:
            _check_fault(answer.exception)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._script.setdefault((method, path), deque()).append(_Scripted(answer, callback, repeat))

    def calls(self, url: str) -> list[Received]:
        """The requests that arrived for `url` (any method)."""
        path = urlsplit(url).path
        return [received for received in self.requests if received.path.split("?", 1)[0] == path]

    # ------------------------------------------------------------------ serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while (received := await _read_request(reader)) is not None:
                self.requests.append(received)
                answer = await self._answer_for(received)
                if answer.exception is not None and _is_timeout(answer.exception):
                    await reader.read()  # nothing is sent; the client's timeout ends the wait
                    return
                if answer.exception is not None:
                    raise _Dropped
                await _write_answer(writer, answer)
        except (_Dropped, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the server closing: end quietly
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _answer_for(self, received: Received) -> Answer:
        queue = self._script.get((received.method, received.path)) or self._script.get(
            (received.method, received.path.split("?", 1)[0])
        )
        if not queue:
            self.unmatched.append(received)
            message = f"mock upstream: nothing scripted for {received.method} {received.path}"
            return Answer(UNMATCHED_STATUS, payload={"error": {"message": message, "type": "mock_unmatched"}})
        scripted = queue[0] if queue[0].repeat else queue.popleft()
        if scripted.callback is None:
            assert scripted.answer is not None
            return scripted.answer
        made = scripted.callback(received)
        answer = await made if inspect.isawaitable(made) else made
        if answer.exception is not None:
            _check_fault(answer.exception)
        return answer


@contextlib.asynccontextmanager
async def mock_upstream() -> AsyncIterator[MockUpstream]:
    server = MockUpstream()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def _is_timeout(fault: BaseException | type[BaseException]) -> bool:
    kind = fault if isinstance(fault, type) else type(fault)
    return issubclass(kind, TimeoutError)


def _check_fault(fault: BaseException | type[BaseException]) -> None:
    kind = fault if isinstance(fault, type) else type(fault)
    if not issubclass(kind, (TimeoutError, ConnectionError)):
        raise TypeError(f"a real upstream can time out (TimeoutError) or drop (ConnectionError), not raise {kind!r}")


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    """The next request on the connection, or None when the client closed it between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    if len(head) > MAX_HEAD_BYTES:
        raise ConnectionError("request head too large")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, target, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
        pass
    return b"".join(parts)


async def _write_answer(writer: asyncio.StreamWriter, answer: Answer) -> None:
    data = answer.data()
    lines = [f"HTTP/1.1 {answer.status} {REASONS.get(answer.status, 'Answer')}", f"Content-Type: {answer.content_type}"]
    lines += [f"{name}: {value}" for name, value in answer.headers.items()]
    if answer.content_type.startswith("text/event-stream"):
        # As real servers stream: chunked, one chunk per event as the test wrote them.
        writer.write(("\r\n".join([*lines, "Transfer-Encoding: chunked"]) + "\r\n\r\n").encode())
        for event in _events(data):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(("\r\n".join([*lines, f"Content-Length: {len(data)}"]) + "\r\n\r\n").encode() + data)
    await writer.drain()


def _events(data: bytes) -> list[bytes]:
    pieces = data.split(b"\n\n")
    events = [piece + b"\n\n" for piece in pieces[:-1]]
    if pieces[-1]:
        events.append(pieces[-1])
    return events
