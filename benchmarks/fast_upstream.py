"""A fake OpenAI upstream that costs next to nothing: raw asyncio HTTP/1.1, every answer precomputed bytes.

Run as `python benchmarks/fast_upstream.py --port 0 [--cpu 1]`; it prints `PORT=<n>` once listening.
`POST /v1/chat/completions` answers the completion of bench_payloads.completion(), or, when the body asks for
`"stream":true`, the 100-chunk stream as chunked SSE, one write per event (`gap_ms` apart when paced).
`GET /_stats` reports request counts; `POST /_config {"gap_ms": x}` sets the pause between stream events.
No validation, no parsing of the JSON body: it must never be the bottleneck of a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any, cast

from bench_payloads import completion, dumps, stream_events_bytes

HEADER_END = b"\r\n\r\n"
STREAM_FLAG = b'"stream":true'
MAX_HEADER_BYTES = 64 * 1024


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: ".encode() + content_type
    return head + f"\r\nContent-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n".encode() + body


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Answers:
    """Precomputed responses and the few counters the control surface shows."""

    def __init__(self) -> None:
        self.completion = _response("200 OK", b"application/json", dumps(completion()).encode())
        self.stream_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
        )
        self.stream_chunks = [_chunk(event) for event in stream_events_bytes()]
        self.stream_end = b"0\r\n\r\n"
        self.not_found = _response("404 Not Found", b"application/json", b'{"error":{"message":"not found"}}')
        self.gap_ms = 0.0
        self.counts = {"json": 0, "stream": 0, "other": 0}

    def stats(self) -> bytes:
        body = json.dumps({"counts": self.counts, "gap_ms": self.gap_ms}).encode()
        return _response("200 OK", b"application/json", body)


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection; requests are answered in order (no pipelining is expected)."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(HEADER_END)
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end]).lower()
            total = end + 4 + _content_length(head)
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.handle(head.split(b" ", 2), body)

    def handle(self, request_line: list[bytes], body: bytes) -> None:
        assert self.transport is not None
        method, path = request_line[0], request_line[1]
        answers = self.answers
        if method == b"post" and path == b"/v1/chat/completions":
            if STREAM_FLAG in body:
                answers.counts["stream"] += 1
                self.send_stream()
            else:
                answers.counts["json"] += 1
                self.transport.write(answers.completion)
            return
        answers.counts["other"] += 1
        if method == b"get" and path == b"/_stats":
            self.transport.write(answers.stats())
        elif method == b"post" and path == b"/_config":
            answers.gap_ms = float(json.loads(body or b"{}").get("gap_ms", 0.0))
            self.transport.write(answers.stats())
        else:
            self.transport.write(answers.not_found)

    def send_stream(self) -> None:
        assert self.transport is not None
        answers = self.answers
        self.transport.write(answers.stream_head)
        if answers.gap_ms <= 0:
            # One write per event, as a server flushing each chunk does; the reader sees whatever coalesces.
            for chunk in answers.stream_chunks:
                self.transport.write(chunk)
            self.transport.write(answers.stream_end)
            return
        asyncio.get_running_loop().create_task(self._paced(self.transport, answers.gap_ms / 1000.0))

    async def _paced(self, transport: asyncio.Transport, gap: float) -> None:
        for chunk in self.answers.stream_chunks:
            if transport.is_closing():
                return
            transport.write(chunk)
            await asyncio.sleep(gap)
        if not transport.is_closing():
            transport.write(self.answers.stream_end)


def _content_length(head: bytes) -> int:
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    end = head.find(b"\r\n", start)
    return int(head[start : end if end >= 0 else len(head)].strip())


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    answers = Answers()
    server = await loop.create_server(lambda: UpstreamProtocol(answers), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT={server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def run(coro: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
