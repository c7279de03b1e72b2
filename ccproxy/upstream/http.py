"""AiohttpUpstream: the one aiohttp implementation of Upstream — a pooled session per backend, aiohttp errors mapped
into the typed tree where they are caught, so none escapes."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp
from yarl import URL

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


class AiohttpUpstream(Upstream):
    """Sends to `base_url` + `request.path` with the backend's `headers` (its key among them).

    Timeouts: `connect_timeout` for getting a connection, `read_timeout` for each read (the status line, then every
    piece of the body), and `request.deadline` for the whole wait until the status line (a timer is armed only when
    the deadline comes more than DEADLINE_SLACK before connect + read timeouts would end that wait anyway).
    TCP_NODELAY is aiohttp's default (set on every connection it makes), so small requests and SSE pieces are not
    held back by Nagle.

    Bounds: `limit_connections` (a backend's `max_connections`, 0 = none) connections at once — a request finding
    them all in use waits up to `connection_wait` seconds for one, then fails with ConnectionsExhausted (529 for the
    client) instead of queueing inside aiohttp until its connect timeout; a body read whole (`read()`) may weigh at
    most `max_body` bytes, a larger one is an UpstreamProtocolError (502), never held in memory.
    """

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
        self.headers = dict(headers)
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        # The longest wait for a status line the timeouts allow; a deadline further off needs no timer of its own.
        self._timeouts_bound = connect_timeout + read_timeout
        self.redact = redact
        self.limit_connections = limit_connections
        self.connection_wait = connection_wait
        self.max_body = max_body
        # Made with the session (on the server's loop): one slot per connection, held until the response is done.
        self._slots: asyncio.Semaphore | None = None
        self._deadlines = Deadlines()
        self.detect_overflow = detect_overflow
        self.ssl_context = ssl_context  # None: aiohttp's default verification
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    async def open(self) -> None:
        if self._session is not None and not self._session.closed:
            return  # already open (ASGI servers may run start-up hooks more than once)
        connector = aiohttp.TCPConnector(
            limit=self.limit_connections,
            keepalive_timeout=KEEPALIVE_SECONDS,
            enable_cleanup_closed=True,
            ssl=self.ssl_context if self.ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, headers=self.headers, auto_decompress=True
        )
        self._slots = asyncio.Semaphore(self.limit_connections) if self.limit_connections > 0 else None

    async def aclose(self) -> None:
        self._deadlines.close()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        slots = self._slots
        if slots is None:
            return await self._send(request, None)
        if slots.locked():  # every connection in use: wait a little for one, then refuse (the fast path arms no timer)
            await wait_for_slot(slots, self.connection_wait, self.limit_connections)
        else:
            await slots.acquire()
        try:
            return await self._send(request, slots)
        except BaseException:
            slots.release()
            raise

    async def _send(self, request: UpstreamRequest, slot: asyncio.Semaphore | None) -> UpstreamResponse:
        session = self._session
        if session is None:
            raise RuntimeError("upstream used before open() (it opens on server start)")
        remaining = request.deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout("Upstream deadline passed before the request was sent", phase="status")
        post = session.request(
            request.method, self._url(request.path), data=request.body or None, headers=request.headers or None
        )
        try:
            if remaining < self._timeouts_bound - DEADLINE_SLACK:
                async with asyncio.timeout(remaining):
                    response = await post
            else:  # the connect and read timeouts end the wait first; spare the per-request timer
                response = await post
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamTimeout("Upstream connection timed out", phase="connect") from None
        except TimeoutError:  # aiohttp's read timeout before the status line, or the request's deadline
            raise UpstreamTimeout("Upstream did not answer in time", phase="status") from None
        except aiohttp.ClientConnectorError as exc:
            message = f"Upstream unreachable ({exc.host}:{exc.port}): {exc.os_error}"
            raise UpstreamConnectError(self.redact(message)) from None
        except aiohttp.ClientResponseError as exc:  # an answer aiohttp could not parse as HTTP
            raise UpstreamProtocolError(self.redact(f"Upstream sent a malformed answer: {exc}")) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamConnectError(self.redact(f"Upstream request failed: {exc}")) from None
        if response.status >= 400:
            raise await self._status_error(response, request.deadline)
        return AiohttpResponse(response, self.redact, slot, self.max_body, request.deadline, self._deadlines)

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            # A provider may post somewhere else than under its base URL: a whole URL is taken as it is.
            url = URL(path) if "://" in path else URL(self.base_url + path)
            if len(self._urls) < MAX_CACHED_URLS:
                self._urls[path] = url
        return url

    async def _status_error(self, response: aiohttp.ClientResponse, deadline: float) -> UpstreamFailure:
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):  # a trickled error body too
                body = await _read_bounded(response.content, MAX_ERROR_BODY)
        except (TimeoutError, aiohttp.ClientError, OSError):
            body = b""  # the status says enough; a body that does not come is not worth a second failure
        finally:
            _finish(response)
        return status_error(
            response.status, body, response.headers, redact=self.redact, detect_overflow=self.detect_overflow
        )


class AiohttpResponse(UpstreamResponse):
    """An aiohttp response behind the UpstreamResponse interface; errors mapped, connection dropped if unfinished.

    The whole body must be in by `deadline` (the request's, on time.monotonic; None: no deadline): while it is read,
    `deadlines` (its transport's) drops the connection once that has passed, so an upstream trickling a byte at a
    time cannot hold the request longer — the read timeout alone restarts with every byte. The read in progress then
    fails with UpstreamTimeout.
    """

    __slots__ = ("_deadline", "_deadlines", "_expired", "_max_body", "_redact", "_response", "_slot")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        redact: Redact,
        slot: asyncio.Semaphore | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        deadline: float | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        super().__init__(response.status, response.headers)
        self._response = response
        self._redact = redact
        self._slot = slot  # the connection slot this response holds, released once when it is finished
        self._max_body = max_body
        self._deadline = deadline
        self._deadlines = deadlines
        self._expired = False

    def _arm(self) -> None:
        if self._deadline is not None and self._deadlines is not None:
            self._deadlines.watch(self, self._deadline)

    def expire(self) -> None:
        """The deadline has passed: drop the connection, so the pending read fails (or ends) at once."""
        self._expired = True
        self._response.close()

    async def read(self, limit: int | None = None) -> bytes:
        response = self._response
        self._arm()
        try:
            if limit is not None:
                return await _read_bounded(response.content, limit)
            body = await _read_bounded(response.content, self._max_body + 1)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._mapped(exc) from None
        finally:
            self._finish()
        if self._expired:
            raise past_deadline()
        if len(body) > self._max_body:
            raise body_too_large(self._max_body)
        return body

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        content = self._response.content
        self._arm()
        try:
            while data := await content.readany():
                yield data
            if self._expired:  # the deadline's close can end the body like an EOF
                raise past_deadline()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._mapped(exc) from None
        finally:
            # Closing (not releasing) an unfinished response drops the connection, so the upstream sees the
            # cancellation when our client went away mid-stream.
            self._finish()

    async def aclose(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self._deadlines is not None:
            self._deadlines.forget(self)
        _finish(self._response)
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()

    def _mapped(self, exc: Exception) -> UpstreamFailure:
        """The typed failure for an aiohttp or socket error raised while the body came in."""
        if self._expired:
            return past_deadline()
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout("Upstream stopped sending data (read timeout)", phase="read")
        return UpstreamConnectError(self._redact(f"Upstream connection lost: {exc}"))


async def _read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes:
    """At most `limit` bytes of the body (StreamReader.read(n) returns what is buffered, up to n)."""
    parts: list[bytes] = []
    left = limit
    while left > 0 and (data := await content.read(left)):
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def _finish(response: aiohttp.ClientResponse) -> None:
    if response.content.at_eof():
        response.release()
    else:
        response.close()
