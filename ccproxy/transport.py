"""The one aiohttp ClientSession: send a body upstream, read JSON or stream bytes, map failures to ProxyErrors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from ccproxy.core.jsoncodec import loads
from ccproxy.core.overflow import prompt_too_long
from ccproxy.core.response import parse_completion
from ccproxy.errors import ProxyError, UpstreamError, upstream_error


def upstream_http_error(status: int, raw: bytes, retry_after: str | None) -> UpstreamError:
    """The error for an upstream HTTP error answer (OpenAI-style, OpenRouter or plain text body).

    The upstream's text is kept as it is: the app redacts it where it leaves (ccproxy/redaction.py).
    """
    detail = raw.decode("utf-8", "replace").strip()
    try:
        parsed = loads(raw)
    except (ValueError, TypeError):
        parsed = None
    overflow = prompt_too_long(parsed if isinstance(parsed, dict) else detail)
    if overflow is not None:
        return UpstreamError(overflow, status=400)
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            detail = str(error.get("message") or error.get("detail") or detail)
        elif isinstance(error, str):
            detail = error
    return upstream_error(status, f"Upstream error {status}: {detail or 'no details'}", retry_after)


class Transport:
    """Owns the pooled upstream session; opened in before_server_start, closed in after_server_stop."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        request_timeout: float,
        connect_timeout: float,
    ) -> None:
        self.url = url
        self.headers = dict(headers)
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=request_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is not None and not self._session.closed:
            return  # already open (ASGI servers may run start-up hooks more than once)
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, headers=self.headers, auto_decompress=True
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("transport used before the server started")
        return self._session

    async def post(self, body: bytes) -> aiohttp.ClientResponse:
        """Send `body`; return the response once its status line is in, or raise the mapped ProxyError."""
        try:
            response = await self.session.post(self.url, data=body)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise ProxyError("Upstream did not answer in time", status=504) from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(f"Upstream unreachable ({exc.host}:{exc.port}): {exc.os_error}", status=502) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Upstream request failed: {exc}", status=502) from None
        if response.status >= 400:
            raw = await self._read_quietly(response)
            response.release()
            raise upstream_http_error(response.status, raw, response.headers.get("retry-after"))
        return response

    async def post_json(self, body: bytes) -> dict[str, Any]:
        """Send `body` and return the parsed JSON answer."""
        return await self.read_json(await self.post(body))

    async def read_json(self, response: aiohttp.ClientResponse, head: bytes = b"") -> dict[str, Any]:
        """The rest of the body after `head` (bytes already read from it), parsed as a JSON object."""
        try:
            raw = head + await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise ProxyError("Upstream did not answer in time", status=504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Upstream connection failed: {exc}", status=502) from None
        finally:
            response.release()
        return parse_completion(raw)

    async def read_some(self, response: aiohttp.ClientResponse) -> bytes:
        """The next piece of the body, b"" at its end; on failure the response is closed and a ProxyError raised."""
        try:
            return await response.content.readany()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            response.close()
            raise ProxyError("Upstream did not answer in time", status=504) from None
        except aiohttp.ClientError as exc:
            response.close()
            raise UpstreamError(f"Upstream connection failed: {exc}", status=502) from None

    async def iter_bytes(self, response: aiohttp.ClientResponse, head: bytes = b"") -> AsyncIterator[bytes]:
        """The body as it arrives, after `head` (what was already read of it); network failures become
        ProxyErrors (the caller sends an error event)."""
        try:
            if head:
                yield head
            async for data in response.content.iter_any():
                yield data
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise ProxyError("Upstream stopped sending data (read timeout)", status=504) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Upstream connection lost: {exc}", status=502) from None
        finally:
            # Closing (not releasing) an unfinished response drops the connection, so the upstream sees the
            # cancellation when our client went away mid-stream.
            if response.content.at_eof():
                response.release()
            else:
                response.close()

    async def _read_quietly(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.content.read(64 * 1024)
        except (TimeoutError, aiohttp.ClientError):
            return b""
