"""The one aiohttp ClientSession: send a body upstream, read JSON or stream bytes, map failures to ProxyErrors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from ccproxy.core.jsoncodec import loads
from ccproxy.core.response import parse_completion
from ccproxy.errors import ProxyError, UpstreamError, upstream_error

# Anything that looks like an API key; upstream messages sometimes echo (part of) the key they rejected.
_KEYLIKE = re.compile(r"\b(sk|rk|pk|or|key)-[A-Za-z0-9_\-*]{6,}")
MAX_ERROR_MESSAGE = 2000


class Redactor:
    """Removes the configured secret and key-shaped strings from text that may reach a client or a log."""

    def __init__(self, *secrets: str | None) -> None:
        self.secrets = tuple(s for s in secrets if s)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return _KEYLIKE.sub("[redacted]", text)


def upstream_error_message(status: int, raw: bytes, redact: Redactor) -> str:
    """A readable message from an OpenAI-style (or OpenRouter, or plain text) error body."""
    detail = raw.decode("utf-8", "replace").strip()
    try:
        parsed = loads(raw)
    except (ValueError, TypeError):
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            detail = str(error.get("message") or error.get("detail") or detail)
        elif isinstance(error, str):
            detail = error
    detail = redact(detail)[:MAX_ERROR_MESSAGE] or "no details"
    return f"Upstream error {status}: {detail}"


class Transport:
    """Owns the pooled upstream session; opened in before_server_start, closed in after_server_stop."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        *,
        request_timeout: float,
        connect_timeout: float,
        redact: Redactor,
    ) -> None:
        self.url = url
        self.headers = dict(headers)
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=request_timeout)
        self.redact = redact
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
            raise UpstreamError(
                f"Upstream unreachable ({exc.host}:{exc.port}): {self.redact(str(exc.os_error))}", status=502
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"Upstream request failed: {self.redact(str(exc))}", status=502) from None
        if response.status >= 400:
            raw = await self._read_quietly(response)
            response.release()
            message = upstream_error_message(response.status, raw, self.redact)
            raise upstream_error(response.status, message, response.headers.get("retry-after"))
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
            raise UpstreamError(f"Upstream connection failed: {self.redact(str(exc))}", status=502) from None
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
            raise UpstreamError(f"Upstream connection failed: {self.redact(str(exc))}", status=502) from None

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
            raise UpstreamError(f"Upstream connection lost: {self.redact(str(exc))}", status=502) from None
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
