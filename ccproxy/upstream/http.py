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

KEEPALIVE_SECONDS = 60.0
# Request paths come from providers, not clients; a few distinct ones are cached as parsed URLs.
MAX_CACHED_URLS = 32
# A deadline less than this before the end of what the connect and read timeouts allow is left to them: a first
# attempt's deadline (now + connect + read timeout) then costs no timer of its own.
DEADLINE_SLACK = 1.0


class AiohttpUpstream(Upstream):
    """Sends to `base_url` + `request.path` with the backend's `headers` (its key among them).

    Timeouts: `connect_timeout` for getting a connection, `read_timeout` for each read (the status line, then every
    piece of the body), and `request.deadline` for the whole wait until the status line (a timer is armed only when
    the deadline comes more than DEADLINE_SLACK before connect + read timeouts would end that wait anyway).
    TCP_NODELAY is aiohttp's default (set on every connection it makes), so small requests and SSE pieces are not
    held back by Nagle.
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

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
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
            raise await self._status_error(response)
        return AiohttpResponse(response, self.redact)

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            # A provider may post somewhere else than under its base URL: a whole URL is taken as it is.
            url = URL(path) if "://" in path else URL(self.base_url + path)
            if len(self._urls) < MAX_CACHED_URLS:
                self._urls[path] = url
        return url

    async def _status_error(self, response: aiohttp.ClientResponse) -> UpstreamFailure:
        try:
            body = await _read_bounded(response.content, MAX_ERROR_BODY)
        except (TimeoutError, aiohttp.ClientError, OSError):
            body = b""  # the status says enough; a body that does not come is not worth a second failure
        finally:
            _finish(response)
        return status_error(
            response.status, body, response.headers, redact=self.redact, detect_overflow=self.detect_overflow
        )


class AiohttpResponse(UpstreamResponse):
    """An aiohttp response behind the UpstreamResponse interface; errors mapped, connection dropped if unfinished."""

    __slots__ = ("_redact", "_response")

    def __init__(self, response: aiohttp.ClientResponse, redact: Redact) -> None:
        super().__init__(response.status, response.headers)
        self._response = response
        self._redact = redact

    async def read(self, limit: int | None = None) -> bytes:
        response = self._response
        try:
            if limit is None:
                return await response.read()
            return await _read_bounded(response.content, limit)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._mapped(exc) from None
        finally:
            _finish(response)

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while data := await content.readany():
                yield data
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._mapped(exc) from None
        finally:
            # Closing (not releasing) an unfinished response drops the connection, so the upstream sees the
            # cancellation when our client went away mid-stream.
            _finish(self._response)

    async def aclose(self) -> None:
        _finish(self._response)

    def _mapped(self, exc: Exception) -> UpstreamFailure:
        """The typed failure for an aiohttp or socket error raised while the body came in."""
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
