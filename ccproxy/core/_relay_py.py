"""The upstream's answer to a stream request -> the Anthropic SSE bytes for the client, sans-IO (wire.md 4.10).

Decisions a reader should know:
- What kind of body the upstream sent is told before the client sees a byte wherever possible. A body labelled
  `text/event-stream` is streamed at once (wire.md 4.10: answer as soon as the status line is in); any other is
  judged by its first bytes (`sniff`), because labels lie both ways (event streams sent as `text/plain` or
  `application/json`, error pages as `text/plain`). A JSON completion (an upstream that ignored `stream: true`)
  is replayed as a well-formed stream; a JSON error object is that error; an HTML page, plain text or an empty
  body is an UpstreamError 502 naming what came instead (`not_a_stream`).
- A body labelled as an event stream is read as one. If it carries no event at all by its end, it is judged as a
  whole the same way, and the outcome is sent as events (the client has the 200 by then); so a JSON completion or
  error sent as `text/event-stream` still arrives, and nothing ever becomes an empty "complete" message.
- `[DONE]` ends the answer as complete; the end of the body without it is complete only after a finish reason
  (StreamTranslator.end_of_body). Chunks that are JSON but not an object carry nothing and are skipped; a chunk
  that is not JSON is an UpstreamError.
"""

from __future__ import annotations

from typing import Any

from orjson import loads as orjson_loads

from ccproxy.core._response_py import convert_response, parse_completion
from ccproxy.core._sse_py import SSEDecoder, encode_events
from ccproxy.core._stream_py import StreamTranslator
from ccproxy.core.jsoncodec import loads
from ccproxy.core.plan import ResponseContext
from ccproxy.errors import ProxyError, UpstreamError

__all__ = ["EMPTY", "HTML", "JSON", "SSE", "TEXT", "StreamRelay", "is_event_stream", "not_a_stream", "sniff"]

# Body kinds.
SSE = "sse"
JSON = "json"
HTML = "html"
TEXT = "text"
EMPTY = "empty"

# A body that has carried no event by then is not an event stream, whatever its content type says.
MAX_BODY_WITHOUT_EVENTS = 8 * 1024 * 1024

# Leading whitespace beyond this is not the start of anything sniff could recognise.
_SNIFF_LIMIT = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")
_DONE = b"[DONE]"


def is_event_stream(content_type: str) -> bool:
    """Whether a content type (without parameters) says event stream: the one label taken at its word."""
    return content_type.lower() == "text/event-stream"


def sniff(head: bytes, at_eof: bool) -> str | None:
    """The kind of a body from its first bytes; None while too few have arrived to tell."""
    text = head[len(_BOM) :] if head.startswith(_BOM) else head
    text = text.lstrip()
    if not text:
        if at_eof:
            return EMPTY
        return TEXT if len(head) > _SNIFF_LIMIT else None
    first = text[:1]
    if first in (b"{", b"["):
        return JSON
    if first == b"<":
        return HTML
    for start in _SSE_STARTS:
        if text.startswith(start):
            return SSE
        if not at_eof and start.startswith(text):
            return None
    return TEXT


def _loads_or_raise(payload: bytes) -> Any:
    """A chunk orjson refused: what jsoncodec.loads reads (lone surrogates), else an UpstreamError."""
    try:
        return loads(payload)
    except ValueError:
        raise UpstreamError("Upstream sent a malformed stream chunk", status=502) from None


def not_a_stream(kind: str, content_type: str = "") -> UpstreamError:
    """The error for a stream request answered with a body of `kind` that is neither a stream nor JSON."""
    label = f" (content-type {content_type})" if content_type else ""
    if kind == EMPTY:
        what = "an empty body"
    elif kind == HTML:
        what = "an HTML page"
    else:
        what = "a body that is neither an event stream nor JSON"
    return UpstreamError(f"Upstream answered the stream request with {what}{label}", status=502)


class StreamRelay:
    """Decoder, JSON parse and translator for one upstream stream: `feed` each read, `end` at the end of the body.

    `feed` and `end` raise ProxyError for an upstream failure; `fail(error)` then gives the bytes that end the stream
    (what was translated before the failure in the same read, then the error event).
    """

    __slots__ = ("_ctx", "_decoder", "_head", "_head_size", "_out", "_translator")

    def __init__(self, ctx: ResponseContext, translator: Any = None) -> None:
        self._ctx = ctx
        # A StreamTranslator, or one wrapped in stream filters (ccproxy/filters.py) with the same surface.
        self._translator = StreamTranslator(ctx) if translator is None else translator
        self._decoder = SSEDecoder()
        # Encoded events of the read being translated.
        self._out: list[bytes] = []
        # The body while it has carried no event; None once one has.
        self._head: list[bytes] | None = []
        self._head_size = 0

    @property
    def done(self) -> bool:
        """True once the answer has ended (message_stop or an error event); later reads are not needed."""
        return self._translator.done

    def start(self) -> bytes:
        """message_start and a ping: sent as soon as the upstream has answered 200."""
        return encode_events(self._translator.start())

    def replay(self, message: dict[str, Any]) -> bytes:
        """The whole stream of an Anthropic message, for an upstream that answered with one completion."""
        return encode_events(self._translator.replay(message))

    def feed(self, data: bytes) -> bytes:
        """The Anthropic SSE bytes for one upstream read."""
        payloads = self._decoder.feed(data)
        if self._head is not None:
            self._keep(data, payloads)
        if not payloads:
            return b""
        out = self._out
        self._translate(payloads, out)
        encoded = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return encoded

    def end(self) -> bytes:
        """The last bytes, once the upstream body has ended."""
        payloads = self._decoder.flush()
        if payloads:
            self._head = None
            self._translate(payloads, self._out)
        translator = self._translator
        if not translator.done:
            if self._head is not None:
                self._out.append(self._whole_body(b"".join(self._head)))
            else:
                self._out.append(encode_events(translator.end_of_body()))
        return self._take()

    def fail(self, error: ProxyError) -> bytes:
        """What was translated before `error`, then the error event that ends the stream."""
        self._out.append(encode_events(self._translator.error_events(error)))
        return self._take()

    def _take(self) -> bytes:
        out = self._out
        if not out:
            return b""
        encoded = b"".join(out)
        out.clear()
        return encoded

    def _translate(self, payloads: list[bytes], out: list[bytes]) -> None:
        """Append the encoded events for `payloads` to `out` (kept there if a later payload fails)."""
        translator = self._translator
        try:
            for payload in payloads:
                if payload == _DONE:
                    out.append(encode_events(translator.finish()))
                    return
                try:
                    # orjson itself, and jsoncodec.loads only for what it refuses: one call less per chunk.
                    chunk = orjson_loads(payload)
                except ValueError:
                    chunk = _loads_or_raise(payload)
                if type(chunk) is dict:
                    out.append(translator.feed_sse(chunk))
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            # A shape no check in the translator foresaw: the upstream's fault, so an error event, not a traceback.
            raise UpstreamError(
                f"Upstream sent a stream chunk ccproxy cannot read ({type(exc).__name__})", status=502
            ) from None

    def _keep(self, data: bytes, payloads: list[bytes]) -> None:
        if payloads:
            self._head = None
            return
        if self._head is not None:
            self._head.append(data)
        self._head_size += len(data)
        if self._head_size > MAX_BODY_WITHOUT_EVENTS:
            raise not_a_stream(TEXT)

    def _whole_body(self, raw: bytes) -> bytes:
        """The events for a body that carried no event: what it is instead, judged as a whole."""
        kind = sniff(raw, at_eof=True)
        if kind == JSON:
            message = convert_response(parse_completion(raw), self._ctx)
            return encode_events(self._translator.replay(message))
        if kind == SSE:  # only comments or empty events: nothing was answered
            return encode_events(self._translator.end_of_body())
        raise not_a_stream(kind or TEXT)
