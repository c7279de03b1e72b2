"""Server-sent events without IO: an incremental decoder for the upstream, an encoder for Anthropic events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ccproxy.core.jsoncodec import dumps
from ccproxy.errors import UpstreamError

__all__ = ["DEFAULT_MAX_LINE", "SSEDecoder", "encode_event", "encode_events"]

# Bytes one line (or the data lines of one event) may take before the stream is refused (MAX_SSE_LINE_BYTES).
DEFAULT_MAX_LINE = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LF = 0x0A
_CR = 0x0D
_BOM_FIRST = 0xEF


class SSEDecoder:
    """Incremental decoder of an SSE byte stream into its `data` payloads (WHATWG "event stream" parsing).

    Payloads are UTF-8 bytes (what a JSON parser takes without decoding): invalid UTF-8 is replaced with
    U+FFFD, so they are always valid. Bytes are buffered and only complete lines are read: CR and LF never
    occur inside a multi-byte UTF-8 sequence, so a character split across two reads is joined first, and the
    output is the same however the stream is cut. Lines end with CRLF, LF or CR; a CR that ends one read and
    an LF that starts the next are one line end. Comments (`:`), `event`, `id`, `retry` and unknown fields are
    ignored, because OpenAI-compatible streams carry everything in `data`; the one exception is an `error` field
    (older llama.cpp servers), returned as an `{"error": ...}` payload. Events whose data is empty are
    dropped: they carry nothing and would only have to be skipped by every caller. `[DONE]` is returned like
    any other payload.

    Nearly every upstream read is whole one-line events (`data: {...}\\n\\n`) with LF line ends: `feed` reads
    those with one split instead of line by line, and leaves everything else to the line reader.

    Memory is bounded: a line whose end has not come within `max_line` bytes, or an event whose data lines add up
    to more, raises UpstreamError (502; an error event for the client) instead of being buffered further. Only the
    paths that buffer count bytes; whole one-line events in one read cost nothing more.
    """

    __slots__ = ("_data", "_data_size", "_max_line", "_partial", "_partial_size", "_skip_lf", "_started")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._max_line = max_line
        # `data` field values of the event being read, and their bytes.
        self._data: list[bytes] = []
        self._data_size = 0
        # Pieces of a line whose end has not arrived yet, and their bytes.
        self._partial: list[bytes] = []
        self._partial_size = 0
        # The last read ended in CR: an LF at the start of the next read belongs to that line end.
        self._skip_lf = False
        # Whether the first line (which may start with a byte-order mark) has been read.
        self._started = False

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads of the events completed by `data`."""
        if self._skip_lf or self._data:
            return self._feed_lines(data)
        if not self._started:
            # Whether the stream starts with a byte-order mark is for the line reader to decide.
            if self._partial or not data or data[0] == _BOM_FIRST:
                return self._feed_lines(data)
            self._started = True
        if self._partial:
            if data.find(b"\n") < 0:
                return self._feed_lines(data)
            self._partial.append(data)
            data = b"".join(self._partial)
            self._partial = []
            self._partial_size = 0
        payloads = self._whole_events(data)
        return self._feed_lines(data) if payloads is None else payloads

    def flush(self) -> list[bytes]:
        """Payloads still pending when the stream ends: a last line without a line end, an event without the
        blank line that should close it (the SSE spec drops that event; upstreams that omit the final blank
        line are common enough that keeping it is the safer choice). The decoder is then empty again."""
        lines = [b"".join(self._partial)] if self._partial else []
        self._partial = []
        self._partial_size = 0
        self._skip_lf = False
        payloads = self._read_lines(lines)
        self._dispatch(payloads)
        return payloads

    def _feed_lines(self, data: bytes) -> list[bytes]:
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
        if b"\n" not in data and b"\r" not in data:
            if data:
                self._partial.append(data)
                self._partial_size += len(data)
                if self._partial_size > self._max_line:
                    raise _too_long("line", self._max_line)
            return []
        if self._partial:
            self._partial.append(data)
            data = b"".join(self._partial)
            self._partial = []
        lines = data.splitlines(keepends=True)
        last = lines[-1][-1]
        self._partial_size = 0
        if last == _CR:
            self._skip_lf = True
        elif last != _LF:
            rest = lines.pop()
            self._partial.append(rest)
            self._partial_size = len(rest)
        return self._read_lines(lines)

    def _read_lines(self, lines: list[bytes]) -> list[bytes]:
        if lines and not self._started:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
        payloads: list[bytes] = []
        for raw in lines:
            # A line holds no CR or LF except its own terminator, so this strips exactly the terminator.
            line = raw.rstrip(b"\r\n")
            if not line:
                self._dispatch(payloads)
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)
                self._data_size += len(line)
                if self._data_size > self._max_line:
                    raise _too_long("event", self._max_line)
            elif line == b"data":
                self._data.append(b"")
            elif line.startswith(b"error:"):
                # llama.cpp servers up to late 2025 report a failure inside a stream (at HTTP 200) in an `error`
                # field, not in `data`: read as the `{"error": ...}` chunk other servers send, so its message
                # (a context overflow, say) reaches the client instead of a stream that just ends.
                value = line[6:]
                self._data.append(_error_payload(value[1:] if value[:1] == b" " else value))
                self._data_size += len(line)
                if self._data_size > self._max_line:
                    raise _too_long("event", self._max_line)
        return payloads

    def _dispatch(self, payloads: list[bytes]) -> None:
        if not self._data:
            return
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        self._data_size = 0
        if data:
            payloads.append(data if data.isascii() else _valid_utf8(data))

    def _whole_events(self, data: bytes) -> list[bytes] | None:
        """The payloads of a read of one-line events with LF line ends, or None (nothing read) for any other.

        The read may end inside a line (that piece is kept for the next read), not inside an event's later
        lines. Every event is one line, a `data` field or an ignored field or comment, and a blank line.
        """
        # `find` rather than `in`: `in` takes the slower buffer-protocol path for a bytes needle.
        if data.find(b"\r") >= 0:
            return None
        payloads: list[bytes] = []
        size = len(data)
        start = 0
        end = data.find(b"\n")
        while end >= 0:
            if end + 1 == size or data[end + 1] != _LF:
                return None
            if data.startswith(b"data: ", start):
                if end > start + 6:
                    payloads.append(data[start + 6 : end])
            elif data.startswith(b"data:", start) and end > start + 5:
                payloads.append(data[start + 5 : end])
            elif data.startswith(b"error:", start):  # llama.cpp's error field: the line reader's
                return None
            start = end + 2
            end = data.find(b"\n", start)
        if start < size:
            self._partial.append(data[start:] if start else data)
            self._partial_size = size - start
        if not data.isascii():
            payloads = [payload if payload.isascii() else _valid_utf8(payload) for payload in payloads]
        return payloads


def _too_long(what: str, limit: int) -> UpstreamError:
    return UpstreamError(
        f"Upstream sent an event-stream {what} longer than {limit} bytes (MAX_SSE_LINE_BYTES); stream ended",
        status=502,
    )


def _error_payload(value: bytes) -> bytes:
    """An `error` field's value as a `{"error": ...}` chunk: a JSON object as it is, anything else as its message."""
    if value.lstrip().startswith(b"{"):
        return b'{"error":' + value + b"}"
    return dumps({"error": {"message": value.decode("utf-8", "replace").strip() or "Upstream reported an error"}})


def _valid_utf8(data: bytes) -> bytes:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode("utf-8")
    return data


def encode_event(event: dict[str, Any]) -> bytes:
    """One Anthropic SSE event: `event: <type>`, one compact JSON `data` line, a blank line."""
    name: str = event["type"]
    return b"event: " + name.encode() + b"\ndata: " + dumps(event) + b"\n\n"


def encode_events(events: Iterable[dict[str, Any]]) -> bytes:
    """Several events, as one piece to send."""
    return b"".join([encode_event(event) for event in events])
