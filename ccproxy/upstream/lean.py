"""LeanUpstream: an HTTP/1.1 client on asyncio protocols over httptools (llhttp, which Sanic already depends on) —
keep-alive pooling per origin, TLS, content-length, chunked and close-delimited bodies, the same error tree as
AiohttpUpstream and none of aiohttp's per-request machinery (request/response objects, tracing, cookie jar, URL
building, header multidicts)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import cast
from urllib.parse import quote, urljoin, urlsplit

import httptools

from ccproxy.upstream.base import Upstream, UpstreamRequest, UpstreamResponse
from ccproxy.upstream.bounds import (
    DEADLINE_SLACK,
    DEFAULT_MAX_BODY,
    KEEPALIVE_SECONDS,
    MAX_CACHED_URLS,
    Deadlines,
    body_too_large,
    past_deadline,
    wait_for_slot,
)
from ccproxy.upstream.errors import (
    MAX_ERROR_BODY,
    OverflowDetector,
    Redact,
    UpstreamConnectError,
    UpstreamFailure,
    UpstreamProtocolError,
    UpstreamTimeout,
    never_overflow,
    status_error,
)

# Body bytes buffered before reading from the socket pauses (the consumer is slower than the upstream).
HIGH_WATER = 256 * 1024
# Characters of an unparsable answer quoted in the protocol error (redacted), as aiohttp quotes the offending line.
QUOTED_ANSWER = 120
USER_AGENT = "ccproxy"
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"
_DECODED = frozenset({"gzip", "x-gzip", "deflate"})
# Redirects followed: the two that keep the method and body (RFC 9110 15.4.8-9), to the same origin only (the
# backend's headers carry its key), at most MAX_REDIRECTS in a row, as aiohttp follows them (its limit is 10).
# 301 / 302 / 303 would turn the POST into a GET, which no chat endpoint answers: refused with their target.
_FOLLOWED = frozenset({307, 308})
MAX_REDIRECTS = 10

Origin = tuple[str, str, int]  # scheme, host, port


class _Target:
    """A parsed request URL: which pool it uses and the bytes of the request head that never change."""

    __slots__ = ("origin", "prefix")

    def __init__(self, origin: Origin, path: str, fixed: bytes) -> None:
        self.origin = origin
        self.prefix = (f" {path} HTTP/1.1\r\n".encode()) + fixed  # after the method


class _Connection(asyncio.Protocol):
    """One upstream connection and the response being read on it: the parser's callbacks fill `body`, every change
    wakes the one waiter. `failure` is set once the response can no longer complete."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop, read_timeout: float, redact: Redact) -> None:
        self.origin = origin
        self.loop = loop
        self.read_timeout = read_timeout
        self.redact = redact
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_in: list[_Connection] | None = None  # the pool list holding it while idle
        self.idle_since = 0.0
        self.reused = False
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers: dict[str, str] | None = None
        self.body: list[bytes] = []
        self.buffered = 0
        self.received = 0
        self.complete = False
        self.keep_alive = False
        self.failure: UpstreamFailure | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.decoder: zlib._Decompress | None = None
        self.last_read = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.first_bytes = b""

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small requests and SSE pieces must not wait for Nagle (uvloop and asyncio set it too; made explicit).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        if not self.received:
            self.first_bytes = data[:QUOTED_ANSWER]
        self.received += len(data)
        if self.failure is not None or self.complete:
            # Bytes after the answer (or after a failure) end the connection's usefulness, not the answer's.
            self.keep_alive = False
            if self.idle_in is not None:
                self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail_parse(exc, data)
        except zlib.error as exc:
            self._fail(UpstreamConnectError(self.redact(f"Upstream connection lost: bad compressed body: {exc}")))
        # Once per read, not per parsed piece: a read holding many chunks wakes the reader once, with all of them.
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._settle_lost(exc)
        finally:
            # The parser's callbacks are this protocol's methods: a reference cycle. Nothing is parsed after the
            # connection is gone, so the parser goes, and reference counting frees a closed connection as soon as
            # the pool and the reader let go of it, not at the next cycle collection.
            del self.parser

    def _settle_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.transport = None
        self._cancel_timer()
        if self.idle_in is not None:
            with contextlib.suppress(ValueError):
                self.idle_in.remove(self)
            self.idle_in = None
        if self.complete or self.failure is not None:
            self._wake()
            return
        if self.headers is not None and self._ends_at_eof():
            self.on_message_complete()  # a body without length or chunking ends when the connection does
            return
        reason = str(exc) if exc is not None else "Server disconnected"
        if self.headers is None:
            self._fail(UpstreamConnectError(self.redact(f"Upstream request failed: {reason}")))
        else:
            self._fail(UpstreamConnectError(self.redact(f"Upstream connection lost: {reason}")))

    def pause_writing(self) -> None:
        pass  # request bodies are written whole; the transport buffers them

    def resume_writing(self) -> None:
        pass

    # ------------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._after_answer():
            return
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._after_answer():
            return
        self.status = self.parser.get_status_code()
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.raw_headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in _DECODED:
            # As aiohttp's auto_decompress: gzip and zlib-wrapped deflate (the header says which; 32 accepts both).
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)

    def on_body(self, body: bytes) -> None:
        if self.complete:  # _after_answer, inline: this runs per chunk of a stream
            self.keep_alive = False
            return
        if self.decoder is not None:
            body = self.decoder.decompress(body)
            if not body:
                return
        self.body.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self._after_answer():
            return
        if self.decoder is not None:
            rest = self.decoder.flush()
            if rest:
                self.body.append(rest)
                self.buffered += len(rest)
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # only valid now: llhttp resets for the next message
        self._cancel_timer()
        self._wake()

    def _after_answer(self) -> bool:
        """Whether the parser is past the one answer asked for (a second message in the same read): ignored, and
        the connection is not used again."""
        if self.complete:
            self.keep_alive = False
            return True
        return False

    # ------------------------------------------------------------------ the consumer's side

    def start(self, head: bytes, body: bytes) -> None:
        """Send a request on this (idle) connection and arm the read timeout."""
        self._begin()
        transport = self.transport
        if transport is None:
            self._fail(UpstreamConnectError("Upstream request failed: Server disconnected"))
            return
        if body:
            transport.writelines((head, body))
        else:
            transport.write(head)
        self.timer = self.loop.call_at(self.last_read + self.read_timeout, self._check_timeout)

    async def wait(self) -> None:
        """Until something changes: headers, a body piece, the end, a failure."""
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    def take(self) -> bytes:
        """Everything buffered, joined (reading resumes if it was paused)."""
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.lost and self.failure is None

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def abort(self, failure: UpstreamFailure) -> None:
        """End an unfinished answer with `failure` (the reader gets it at once) and drop the connection."""
        self._fail(failure)
        self.close()

    # ------------------------------------------------------------------ internals

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, failure: UpstreamFailure) -> None:
        if self.failure is None and not self.complete:
            self.failure = failure
        self._cancel_timer()
        self._wake()

    def _fail_parse(self, exc: Exception, data: bytes) -> None:
        """As aiohttp, the offending line is quoted (redacted): a bad status line, or the last line of the data that
        broke a body (llhttp does not say where it stopped)."""
        if self.headers is None:
            quoted = self.first_bytes.split(b"\r\n", 1)[0].decode("latin-1")
            message = f"Upstream sent a malformed answer: {exc} ({quoted!r})"
            self._fail(UpstreamProtocolError(self.redact(message)))
        else:  # as aiohttp: a broken body is a lost connection
            quoted = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1][-QUOTED_ANSWER:].decode("latin-1")
            message = f"Upstream connection lost: malformed body: {exc} ({quoted!r})"
            self._fail(UpstreamConnectError(self.redact(message)))
        self.close()

    def _ends_at_eof(self) -> bool:
        headers = self.headers or {}
        return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()

    def _check_timeout(self) -> None:
        """The read timeout, armed once per response and moved on lazily: data coming in only stamps `last_read`."""
        self.timer = None
        if self.complete or self.failure is not None or self.lost:
            return
        now = self.loop.time()
        if self.paused:  # the consumer is behind, not the upstream
            self.timer = self.loop.call_at(now + self.read_timeout, self._check_timeout)
            return
        due = self.last_read + self.read_timeout
        if now < due:
            self.timer = self.loop.call_at(due, self._check_timeout)
            return
        if self.headers is None:
            self._fail(UpstreamTimeout("Upstream did not answer in time", phase="status"))
        else:
            self._fail(UpstreamTimeout("Upstream stopped sending data (read timeout)", phase="read"))
        self.close()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class LeanUpstream(Upstream):
    """Sends to `base_url` + `request.path` with the backend's `headers` (its key among them), like AiohttpUpstream
    and with the same timeouts: `connect_timeout` for getting a connection (TLS handshake included), `read_timeout`
    for each read (the status line, then every piece of the body), `request.deadline` for the whole wait until the
    status line. Idle connections are kept KEEPALIVE_SECONDS per origin; an unfinished response drops its
    connection, so the upstream sees a client that went away. `ssl_context`: None for the system's default
    verification (certificates and host names checked, SNI sent).

    The same bounds as AiohttpUpstream (ccproxy.upstream.bounds): `limit_connections` (a backend's
    `max_connections`, 0 = none) requests at once, each holding its connection's slot until its response is done — a
    request finding them all in use waits up to `connection_wait` seconds, then fails with ConnectionsExhausted (529);
    a body read whole (`read()`) may weigh at most `max_body` bytes, a larger one is an UpstreamProtocolError (502),
    read no further; and the whole body must be in by `request.deadline` (the transport's Deadlines sweep drops the
    connection of one still coming in, and its reader gets an UpstreamTimeout)."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
        redact: Redact,
        limit_connections: int = 0,
        connection_wait: float = 1.0,
        max_body: int = DEFAULT_MAX_BODY,
        detect_overflow: OverflowDetector = never_overflow,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = _checked_headers(headers)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._timeouts_bound = connect_timeout + read_timeout
        self.redact = redact
        self.detect_overflow = detect_overflow
        self._ssl_given = ssl_context
        self._ssl: ssl.SSLContext | None = None
        self.limit_connections = limit_connections
        self.connection_wait = connection_wait
        self.max_body = max_body
        # One slot per request, held until its response is done (its connection back in the pool or dropped).
        self._slots = asyncio.Semaphore(limit_connections) if limit_connections > 0 else None
        self.deadlines = Deadlines()
        self._pools: dict[Origin, list[_Connection]] | None = None
        self._busy: set[_Connection] = set()
        self._targets: dict[str, _Target] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        if self._pools is not None:
            return  # already open (ASGI servers may run start-up hooks more than once)
        self._loop = asyncio.get_running_loop()
        self._pools = {}

    async def aclose(self) -> None:
        self.deadlines.close()
        pools, self._pools = self._pools, None
        if pools is None:
            return
        for pool in pools.values():
            for connection in list(pool):
                connection.close()
            pool.clear()
        for connection in list(self._busy):
            connection.close()
        self._busy.clear()

    async def send(self, request: UpstreamRequest, redirects: int = 0) -> UpstreamResponse:
        if self._pools is None:
            raise RuntimeError("upstream used before open() (it opens on server start)")
        remaining = request.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout("Upstream deadline passed before the request was sent", phase="status")
        target = self._target(request.path)
        head = _head(request, target)
        slots = self._slots
        if slots is not None:
            if slots.locked():  # every connection in use: wait a little for one, then refuse (529)
                await wait_for_slot(slots, self.connection_wait, self.limit_connections)
            else:
                await slots.acquire()
        try:
            if remaining < self._timeouts_bound - DEADLINE_SLACK:
                async with asyncio.timeout(remaining):
                    connection = await self._exchange(target, head, request.body)
            else:  # the connect and read timeouts end the wait first; spare the per-request timer
                connection = await self._exchange(target, head, request.body)
        except TimeoutError:  # the request's deadline
            self._free_slot()
            raise UpstreamTimeout("Upstream did not answer in time", phase="status") from None
        except BaseException:
            self._free_slot()
            raise
        # From here the connection (in `_busy`) holds the slot: its response's release or drop frees it.
        if connection.status >= 400:
            raise await self._status_error(connection, request.deadline)
        if connection.status >= 300 and connection.status != 304:
            return await self._follow(request, target, connection, redirects)
        return LeanResponse(connection, self, request.deadline)

    async def _follow(
        self, request: UpstreamRequest, target: _Target, connection: _Connection, redirects: int
    ) -> UpstreamResponse:
        """Send `request` again where a 307 / 308 points, on the same origin; any other redirect is an
        UpstreamProtocolError naming its status and target, so the base URL can be corrected."""
        assert connection.headers is not None
        status, location = connection.status, connection.headers.get("location", "")
        await LeanResponse(connection, self, request.deadline).read(MAX_ERROR_BODY)  # drained: the connection stays
        current = request.path if "://" in request.path else self.base_url + request.path
        url = urljoin(current, location.strip())
        try:
            moved = self._target(url) if location else None
        except ValueError:
            moved = None
        shown = urlsplit(url)._replace(query="", fragment="").geturl() if location else "nowhere (no Location)"
        if moved is None or status not in _FOLLOWED or moved.origin != target.origin:
            rule = "ccproxy follows only 307 and 308 redirects within the same scheme, host and port"
            message = f"Upstream redirected the request ({status} to {shown}); {rule}: set base_url to where it points"
            raise UpstreamProtocolError(self.redact(message))
        if redirects >= MAX_REDIRECTS:
            message = f"Upstream redirected the request more than {MAX_REDIRECTS} times (last to {shown})"
            raise UpstreamProtocolError(self.redact(message))
        return await self.send(replace(request, path=url), redirects + 1)

    async def _exchange(self, target: _Target, head: bytes, body: bytes) -> _Connection:
        """A connection whose answer's status line and headers are in.

        A reused connection lost before a byte of the answer came (the upstream closed it as its keep-alive ran out,
        while we sent) is replaced by a new one, once: that upstream never read the request. A timeout is never
        sent again here (the request may be running); the retry layer judges those. The request's slot stays taken
        throughout (the caller frees it if this raises)."""
        for attempt in range(2):
            connection = await self._connection(target.origin)
            try:
                connection.start(head, body)
                while connection.headers is None and connection.failure is None:
                    await connection.wait()
            except BaseException:  # cancelled while waiting: the connection goes, never to the pool
                self._discard(connection)
                raise
            failure = connection.failure
            if failure is None:
                return connection
            self._discard(connection)
            stale = connection.reused and connection.received == 0 and isinstance(failure, UpstreamConnectError)
            if attempt or not stale:
                raise failure
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _connection(self, origin: Origin) -> _Connection:
        """A connection of the pool or a new one, counted busy."""
        pools = self._pools
        if pools is None:
            raise UpstreamConnectError("Upstream request failed: the upstream was closed (server stopping)")
        pool = pools.get(origin)
        if pool is None:
            pool = pools[origin] = []
        now = time.monotonic()
        while pool:
            connection = pool.pop()
            connection.idle_in = None
            if connection.lost or now - connection.idle_since > KEEPALIVE_SECONDS:
                connection.close()
                continue
            connection.reused = True
            self._busy.add(connection)
            return connection
        connection = await self._connect(origin)
        self._busy.add(connection)
        return connection

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        loop = self._loop
        assert loop is not None
        context = self._ssl_context() if scheme == "https" else None
        read_timeout = self.read_timeout
        redact = self.redact
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin, loop, read_timeout, redact),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError:
            raise UpstreamTimeout("Upstream connection timed out", phase="connect") from None
        except OSError as exc:  # refused, DNS, TLS (ssl.SSLError is an OSError)
            raise UpstreamConnectError(self.redact(f"Upstream unreachable ({host}:{port}): {exc}")) from None
        return connection

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            # Made once per backend, on first use: loading the system's CA store takes milliseconds.
            self._ssl = self._ssl_given or ssl.create_default_context()
        return self._ssl

    def release(self, connection: _Connection) -> None:
        """A finished response's connection back to its pool; an unfinished one is dropped."""
        if connection not in self._busy:
            return  # already released
        if not connection.reusable() or self._pools is None:
            self._drop(connection)
            return
        self._busy.discard(connection)
        pool = self._pools.setdefault(connection.origin, [])
        now = time.monotonic()
        if pool and now - pool[0].idle_since > KEEPALIVE_SECONDS:
            pool.pop(0).close()  # the pool is used from its end: close what sank to the bottom unused
        connection.idle_since = now
        connection.idle_in = pool
        pool.append(connection)
        self._free_slot()

    def _drop(self, connection: _Connection) -> None:
        """A response's unfinished connection: closed, and its request's slot freed."""
        if connection in self._busy:
            self._busy.discard(connection)
            self._free_slot()
        connection.close()

    def _discard(self, connection: _Connection) -> None:
        """A connection that failed before its answer's headers: closed; the request keeps its slot."""
        self._busy.discard(connection)
        connection.close()

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _target(self, path: str) -> _Target:
        target = self._targets.get(path)
        if target is None:
            # A provider may post somewhere else than under its base URL: a whole URL is taken as it is.
            target = _parse_target(path if "://" in path else self.base_url + path, self.headers)
            if len(self._targets) < MAX_CACHED_URLS:
                self._targets[path] = target
        return target

    async def _status_error(self, connection: _Connection, deadline: float) -> UpstreamFailure:
        response = LeanResponse(connection, self, deadline)  # a trickled error body is cut at the deadline too
        try:
            body = await response.read(MAX_ERROR_BODY)
        except UpstreamFailure:
            body = b""  # the status says enough; a body that does not come is not worth a second failure
        assert connection.headers is not None
        return status_error(
            connection.status, body, connection.headers, redact=self.redact, detect_overflow=self.detect_overflow
        )


class LeanResponse(UpstreamResponse):
    """The answer on one connection of a LeanUpstream; its failures are already typed and redacted.

    The whole body must be in by `deadline` (the request's, on time.monotonic): while it is read, the transport's
    Deadlines drops the connection once that has passed, and the read in progress fails with UpstreamTimeout — the
    read timeout alone restarts with every byte (an answer already complete when its reading starts, as a small one
    usually is, is not watched at all). Finished once: a connection given back to the pool may carry the
    next answer before this one's body generator is closed, and finishing this response again must not touch it."""

    __slots__ = ("_connection", "_deadline", "_finished", "_upstream", "_watched")

    def __init__(self, connection: _Connection, upstream: LeanUpstream, deadline: float) -> None:
        assert connection.headers is not None
        super().__init__(connection.status, connection.headers)
        self._connection = connection
        self._upstream = upstream
        self._deadline = deadline
        self._finished = False
        self._watched = False

    def _watch(self) -> None:
        self._watched = True
        self._upstream.deadlines.watch(self, self._deadline)

    def expire(self) -> None:
        """The deadline has passed: an answer not complete yet fails at once, and its connection is dropped."""
        if not self._connection.complete:
            self._connection.abort(past_deadline())

    async def read(self, limit: int | None = None) -> bytes:
        if self._finished:  # its connection may carry another answer by now
            raise RuntimeError("the response was read or closed already")
        connection = self._connection
        upstream = self._upstream
        # Past `max_body` the body is refused: one byte more than it is enough to know.
        bound = upstream.max_body + 1 if limit is None else limit
        parts: list[bytes] = []
        size = 0
        if not connection.complete:
            self._watch()
        try:
            while True:
                if connection.body:  # taken as it comes, so a big body never pauses reading
                    data = connection.take()
                    parts.append(data)
                    size += len(data)
                if connection.complete or size >= bound:
                    break
                if connection.failure is not None:
                    raise connection.failure
                await connection.wait()
        finally:
            self._finish()
        if limit is None and size > upstream.max_body:
            raise body_too_large(upstream.max_body)  # before joining what is refused
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data if limit is None else data[:limit]

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if not connection.complete:
            self._watch()
        try:
            while not self._finished:
                if connection.body:
                    yield connection.take()
                elif connection.complete:
                    return
                elif connection.failure is not None:
                    raise connection.failure
                else:
                    await connection.wait()
        finally:
            self._finish()

    async def aclose(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            if self._watched:
                self._upstream.deadlines.forget(self)
            self._upstream.release(self._connection)


def _parse_target(url: str, headers: bytes) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == default else f"{shown}:{port}"
    # As yarl does for aiohttp: characters a request line cannot carry are percent-encoded, escapes kept.
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_QUERY_SAFE)
    fixed = f"Host: {authority}\r\n".encode() + headers
    return _Target((scheme, host, port), path, fixed)


def _checked_headers(headers: Mapping[str, str]) -> bytes:
    """The backend's headers as the bytes of a request head (with a User-Agent unless they name one)."""
    lines = []
    names = set()
    for name, value in headers.items():
        _check_header(name, value)
        names.add(name.lower())
        lines.append(f"{name}: {value}\r\n")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}\r\n")
    return "".join(lines).encode()


def _check_header(name: str, value: str) -> None:
    if not name or any(c in name for c in ":\r\n ") or "\r" in value or "\n" in value:
        raise ValueError(f"invalid upstream header {name!r}")


def _head(request: UpstreamRequest, target: _Target) -> bytes:
    extra = request.headers
    if extra:
        for name, value in extra.items():
            _check_header(name, value)
        # Per-request headers replace the backend's of the same name; rare, so built the simple way.
        fixed_lines = target.prefix.split(b"\r\n")
        first, rest = fixed_lines[0], [line for line in fixed_lines[1:] if line]
        lowered = {name.lower() for name in extra}
        kept = [line for line in rest if line.split(b":", 1)[0].decode("latin-1").lower() not in lowered]
        added = [f"{name}: {value}".encode() for name, value in extra.items()]
        prefix = b"\r\n".join([first, *kept, *added]) + b"\r\n"
    else:
        prefix = target.prefix
    length = len(request.body)
    tail = f"Content-Length: {length}\r\n\r\n".encode() if length or request.method == "POST" else b"\r\n"
    return request.method.encode() + prefix + tail
