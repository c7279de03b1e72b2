"""Server-sent events without IO: an incremental decoder for the upstream, an encoder for Anthropic events."""

from __future__ import annotations

from typing import Any

from ccproxy.core.jsoncodec import dumps

_BOM = b"\xef\xbb\xbf"
_LF = 0x0A
_CR = 0x0D


class SSEDecoder:
    """Incremental decoder of an SSE byte stream into its `data` payloads (WHATWG "event stream" parsing).

    Bytes are buffered and only complete lines are decoded: CR and LF never occur inside a multi-byte UTF-8
    sequence, so a character split across two reads is joined before decoding, and the output is the same
    however the stream is cut. Lines end with CRLF, LF or CR; a CR that ends one read and an LF that starts
    the next are one line end. Comments (`:`), `event`, `id`, `retry` and unknown fields are ignored, because
    OpenAI-compatible streams carry everything in `data`. Events whose data is empty are dropped: they carry
    nothing and would only have to be skipped by every caller. `[DONE]` is returned like any other payload.
    """

    __slots__ = ("_data", "_partial", "_skip_lf", "_started")

    def __init__(self) -> None:
        # `data` field values of the event being read.
        self._data: list[bytes] = []
        # Pieces of a line whose end has not arrived yet.
        self._partial: list[bytes] = []
        # The last read ended in CR: an LF at the start of the next read belongs to that line end.
        self._skip_lf = False
        # Whether the first line (which may start with a byte-order mark) has been read.
        self._started = False

    def feed(self, data: bytes) -> list[str]:
        """The payloads of the events completed by `data`."""
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
        if b"\n" not in data and b"\r" not in data:
            if data:
                self._partial.append(data)
            return []
        if self._partial:
            self._partial.append(data)
            data = b"".join(self._partial)
            self._partial = []
        lines = data.splitlines(keepends=True)
        last = lines[-1][-1]
        if last == _CR:
            self._skip_lf = True
        elif last != _LF:
            self._partial.append(lines.pop())
        return self._read_lines(lines)

    def flush(self) -> list[str]:
        """Payloads still pending when the stream ends: a last line without a line end, an event without the
        blank line that should close it (the SSE spec drops that event; upstreams that omit the final blank
        line are common enough that keeping it is the safer choice). The decoder is then empty again."""
        lines = [b"".join(self._partial)] if self._partial else []
        self._partial = []
        self._skip_lf = False
        payloads = self._read_lines(lines)
        self._dispatch(payloads)
        return payloads

    def _read_lines(self, lines: list[bytes]) -> list[str]:
        if lines and not self._started:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
        payloads: list[str] = []
        for raw in lines:
            # A line holds no CR or LF except its own terminator, so this strips exactly the terminator.
            line = raw.rstrip(b"\r\n")
            if not line:
                self._dispatch(payloads)
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)
            elif line == b"data":
                self._data.append(b"")
        return payloads

    def _dispatch(self, payloads: list[str]) -> None:
        if not self._data:
            return
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        if data:
            payloads.append(data.decode("utf-8", "replace"))


def encode_event(event: dict[str, Any]) -> bytes:
    """One Anthropic SSE event: `event: <type>`, one compact JSON `data` line, a blank line."""
    name: str = event["type"]
    return b"event: " + name.encode() + b"\ndata: " + dumps(event) + b"\n\n"
