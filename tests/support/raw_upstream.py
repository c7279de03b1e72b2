"""A scripted upstream at the TCP level: each request is answered with the next scripted bytes, HTTP or not.

For the in-process API tests that need what tests/support/mock_upstream.py never sends: malformed HTTP, a body that
breaks off after the headers, exception text from the HTTP clients' own parsers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

# Pause between scripted parts, so the client has read the head before the rest arrives.
PART_PAUSE_SECONDS = 0.02


def http_answer(status: int, body: Any, content_type: str = "application/json") -> list[bytes]:
    """A complete HTTP/1.1 answer with a JSON (or text) body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
    return [(head + "Connection: close\r\n\r\n").encode() + data]


def sse_answer(*events: Any) -> list[bytes]:
    """HTTP 200 with an SSE body that ends when the connection closes; each event is one part."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    return [head, *(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)]


class RawUpstream:
    """Listens on 127.0.0.1; `script` holds one answer (a list of byte parts) per expected request."""

    def __init__(self, pause: float = PART_PAUSE_SECONDS) -> None:
        self.pause = pause  # between the parts of one answer
        self.script: list[Sequence[bytes]] = []
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        """Start listening; returns the base URL (what OPENAI_BASE_URL points at)."""
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            self.requests.append(head + await reader.readexactly(length))
            parts = self.script.pop(0) if self.script else http_answer(500, {"error": {"message": "unscripted"}})
            for index, part in enumerate(parts):
                if index:
                    await asyncio.sleep(self.pause)
                writer.write(part)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
