"""The upstream's answer to a stream request -> the Anthropic SSE bytes for the client, sans-IO (wire.md 4.10).

StreamPipeline chains the stages of core/stages.py for one stream; this module also tells what kind of body came.

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

from collections.abc import Callable, Sequence
from typing import Any

from orjson import loads as orjson_loads

from ccproxy.core._response_py import convert_response, parse_completion
from ccproxy.core._sse_py import DEFAULT_MAX_LINE, SSEDecoder, encode_events
from ccproxy.core._stages_py import (
    DONE,
    SHAPE_ERRORS,
    ChunkReader,
    Event,
    EventEncoder,
    FilterStage,
    Stage,
    TranslateStage,
    Translator,
    feed_all,
    reread_chunk,
    unreadable_chunk,
)
from ccproxy.core._stream_py import StreamTranslator, error_event
from ccproxy.core.plan import ResponseContext
from ccproxy.errors import ProxyError, UpstreamError

__all__ = [
    "EMPTY",
    "HTML",
    "JSON",
    "SSE",
    "TEXT",
    "StagedStreamPipeline",
    "StreamPipeline",
    "StreamRelay",
    "is_event_stream",
    "not_a_stream",
    "sniff",
]

# Body kinds.
SSE = "sse"
JSON = "json"
HTML = "html"
TEXT = "text"
EMPTY = "empty"

# A body that has carried no event by then is not an event stream, whatever its content type says.
MAX_BODY_WITHOUT_EVENTS = 8 * 1024 * 1024

# The encode stage holds nothing: one serves every stream.
_ENCODER = EventEncoder()

# Leading whitespace beyond this is not the start of anything sniff could recognise.
_SNIFF_LIMIT = 64 * 1024
_BOM = b"\xef\xbb\xbf"
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")


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


# A whole JSON answer -> the Anthropic message (core/response.py's convert_response for Chat Completions).
ConvertAnswer = Callable[[dict[str, Any], ResponseContext], dict[str, Any]]

# Observers of a stream (StreamPipeline): what they return is ignored.
PayloadTap = Callable[[bytes], object]
EventTap = Callable[[Event], object]
_ATTACHED = ("filters", "payload_tap", "event_tap")


class StreamPipeline:
    """The stream path for one upstream stream (core/stages.py): `feed` each read, `end` at the end of the body.

    Two ways through, the same bytes out. With no filter and no event tap, the fused path: SSEDecoder, orjson, then
    StreamTranslator.feed_sse, which writes the common text and tool-argument deltas straight to bytes without
    building their event dicts. Otherwise the staged path: SSEDecoder -> ChunkReader -> TranslateStage ->
    FilterStage -> event tap -> EventEncoder, every event a dict. Constructed with filters or taps, the object is a
    StagedStreamPipeline, so the plain fused pipeline tests nothing for them per read.

    `feed` and `end` raise ProxyError for an upstream failure or a filter's refusal; `fail(error)` then gives the
    bytes that end the stream (what was sent through before the failure in the same read, then the error event, which
    bypasses the filters). `start` and `replay` never raise ProxyError: a refusal is the error event in their bytes.

    Taps, for observers of the stream (they must not raise; one that does ends the stream like a failing filter):
    - `payload_tap(payload)`: each SSE data payload of the reads fed, in order and `[DONE]` included, before it is
      read (a response cache's tee). It keeps the fused path.
    - `event_tap(event)`: every event the client is sent, after the filters, error events included (metrics). The
      events must exist as dicts for it, so it takes the staged path.

    Another API than Chat Completions (ccproxy/wire.py) brings its own `translator` (fed each payload's JSON object,
    by `feed_sse` on the fused path) and `convert` for a whole JSON answer that came instead of a stream.
    """

    __slots__ = ("_convert", "_ctx", "_decoder", "_head", "_head_size", "_out", "_shaped", "_translator")

    def __new__(cls, *args: Any, **attached: Any) -> StreamPipeline:
        # The keywords of __init__: any filter or tap makes it a StagedStreamPipeline.
        if cls is StreamPipeline and any(attached.get(name) for name in _ATTACHED):
            cls = StagedStreamPipeline
        return object.__new__(cls)

    def __init__(
        self,
        ctx: ResponseContext,
        translator: Translator | None = None,
        *,
        filters: Sequence[Stage[Event, Event]] = (),
        payload_tap: PayloadTap | None = None,
        event_tap: EventTap | None = None,
        convert: ConvertAnswer | None = None,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self._ctx = ctx
        self._translator: Translator = StreamTranslator(ctx, shapes=True) if translator is None else translator
        # Chat Completions' translator reads plain text chunks without their parse (StreamTranslator.feed_payload).
        self._shaped = self._translator if type(self._translator) is StreamTranslator else None
        self._convert: ConvertAnswer = convert_response if convert is None else convert
        self._decoder = SSEDecoder(max_line)
        # Encoded events of the read being translated.
        self._out: list[bytes] = []
        # The body while it has carried no event; None once one has.
        self._head: list[bytes] | None = []
        self._head_size = 0

    @property
    def done(self) -> bool:
        """True once the answer has ended (message_stop or an error event); later reads are not needed."""
        return self._translator.done

    @property
    def upstream_usage(self) -> dict[str, Any] | None:
        """The last `usage` object the upstream stream carried (StreamTranslator.upstream_usage)."""
        return self._translator.upstream_usage

    @property
    def fused(self) -> bool:
        """Whether the fused fast path runs (no filter, no event tap)."""
        return True

    def start(self) -> bytes:
        """message_start and a ping: sent as soon as the upstream has answered 200."""
        try:
            self._emit(self._translator.start())
        except ProxyError as error:
            return self.fail(error)
        return self._take()

    def replay(self, message: dict[str, Any]) -> bytes:
        """The whole stream of an Anthropic message, for an upstream that answered with one completion."""
        try:
            self._emit(self._translator.replay(message))
        except ProxyError as error:
            return self.fail(error)
        return self._take()

    def feed(self, data: bytes) -> bytes:
        """The Anthropic SSE bytes for one upstream read."""
        payloads = self._decoder.feed(data)
        if self._head is not None:
            self._keep(data, payloads)
        if not payloads:
            return b""
        out = self._out
        self._read(payloads, out)
        encoded = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return encoded

    def end(self) -> bytes:
        """The last bytes, once the upstream body has ended."""
        payloads = self._decoder.flush()
        if payloads:
            self._head = None
            self._read(payloads, self._out)
        if not self._translator.done:
            if self._head is not None:
                self._whole_body(b"".join(self._head))
            else:
                self._emit(self._end_of_body())
        return self._take()

    def fail(self, error: ProxyError) -> bytes:
        """What was translated before `error`, then the error event that ends the stream (none once it has ended)."""
        self._send(self._translator.error_events(error))
        return self._take()

    def _take(self) -> bytes:
        out = self._out
        if not out:
            return b""
        encoded = b"".join(out)
        out.clear()
        return encoded

    def _read(self, payloads: list[bytes], out: list[bytes]) -> None:
        """Append the encoded events for `payloads` to `out` (kept there if a later payload fails): the fused path."""
        translator = self._translator
        shaped = self._shaped
        try:
            for payload in payloads:
                if payload == DONE:
                    self._emit(translator.finish())
                    return
                if shaped is not None:
                    encoded = shaped.feed_payload(payload)
                    if encoded is not None:
                        out.append(encoded)
                        continue
                # ChunkReader.feed, inline: this loop runs for every chunk of nearly every stream.
                try:
                    chunk = orjson_loads(payload)
                except ValueError:
                    chunk = reread_chunk(payload)
                if type(chunk) is dict:
                    out.append(translator.feed_sse(chunk))
                    if shaped is not None and not shaped.learn_shape(payload, chunk):
                        shaped = self._shaped = None  # no shape for this stream: not offered payloads any more
        except SHAPE_ERRORS as exc:
            raise unreadable_chunk(exc) from None

    def _end_of_body(self) -> list[Event]:
        """The translator's end of the answer when the body ends without `[DONE]`."""
        return self._translator.end_of_body()

    def _emit(self, events: list[Event]) -> None:
        """Queue translated events for the client."""
        self._out.append(encode_events(events))

    def _send(self, events: list[Event]) -> None:
        """Queue events that pass no filter (the error event) for the client."""
        self._out.append(encode_events(events))

    def _keep(self, data: bytes, payloads: list[bytes]) -> None:
        if payloads:
            self._head = None
            return
        if self._head is not None:
            self._head.append(data)
        self._head_size += len(data)
        if self._head_size > MAX_BODY_WITHOUT_EVENTS:
            raise not_a_stream(TEXT)

    def _whole_body(self, raw: bytes) -> None:
        """The events for a body that carried no event: what it is instead, judged as a whole."""
        kind = sniff(raw, at_eof=True)
        if kind == JSON:
            message = self._convert(parse_completion(raw), self._ctx)
            self._emit(self._translator.replay(message))
        elif kind == SSE:  # only comments or empty events: nothing was answered
            self._emit(self._end_of_body())
        else:
            raise not_a_stream(kind or TEXT)


class StagedStreamPipeline(StreamPipeline):
    """A StreamPipeline with filters or taps attached (StreamPipeline(...) builds one when given them): the staged
    path, or the fused path with a payload tap alone."""

    __slots__ = ("_event_tap", "_filters", "_lost", "_payload_tap", "_reader", "_staged", "_translate")

    def __init__(
        self,
        ctx: ResponseContext,
        translator: Translator | None = None,
        *,
        filters: Sequence[Stage[Event, Event]] = (),
        payload_tap: PayloadTap | None = None,
        event_tap: EventTap | None = None,
        convert: ConvertAnswer | None = None,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        super().__init__(ctx, translator, convert=convert, max_line=max_line)
        self._reader = ChunkReader()
        self._translate = TranslateStage(self._translator, self._reader)
        self._filters = FilterStage(filters) if filters else None
        self._payload_tap = payload_tap
        self._event_tap = event_tap
        self._staged = bool(filters) or event_tap is not None
        # A filter or the event tap raised: if the translator had ended the answer, its end never got out.
        self._lost = False

    @property
    def fused(self) -> bool:
        return not self._staged

    def fail(self, error: ProxyError) -> bytes:
        if self._lost and self._translator.done:
            # The translator ended the answer, but a filter (or the tap) failed on its last events: the client has
            # no end yet.
            self._send([error_event(self._ctx, error)])
        else:
            self._send(self._translator.error_events(error))
        self._lost = False
        return self._take()

    def _read(self, payloads: list[bytes], out: list[bytes]) -> None:
        if self._payload_tap is not None:
            for payload in payloads:
                self._payload_tap(payload)
        if not self._staged:
            StreamPipeline._read(self, payloads, out)
            return
        reader, translate, shaped = self._reader, self._translate, self._shaped
        for payload in payloads:
            if shaped is not None and not reader.ended:
                events = shaped.payload_events(payload)  # StreamTranslator.feed_payload, as events
                if events is not None:
                    self._emit(events)
                    continue
            for chunk in reader.feed(payload):
                self._emit(translate.feed(chunk))
                if shaped is not None and not shaped.learn_shape(payload, chunk):
                    shaped = self._shaped = None  # no shape for this stream: not offered payloads any more
            if reader.ended:
                self._emit(translate.flush())
                return

    def _end_of_body(self) -> list[Event]:
        return self._translate.flush()

    def _emit(self, events: list[Event]) -> None:
        """Queue translated events for the client: through the filters, then tapped and encoded."""
        try:
            if self._filters is not None:
                events = self._filters.feed_many(events)
            self._send(events)
        except Exception:
            self._lost = True
            raise

    def _send(self, events: list[Event]) -> None:
        """Tap and encode events that are final (filtered, or an error event, which bypasses the filters)."""
        if not self._staged:
            self._out.append(encode_events(events))
            return
        tap = self._event_tap
        if tap is not None:
            for event in events:
                tap(event)
        self._out.extend(feed_all(_ENCODER, events))


# The name the stream loop (ccproxy/pipeline.py) and earlier tests know it by.
StreamRelay = StreamPipeline
