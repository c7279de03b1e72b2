"""The stages of the stream path, sans-IO: one contract, `feed(item) -> list[out]` and `flush() -> list[out]`.

Like httpx's incremental decoders (`decode` / `flush`, chained by `MultiDecoder`), each stage turns one input into
any number of outputs, and `flush` gives what it still holds once its input has ended. StreamPipeline
(core/relay.py) chains them for one upstream stream:

    SSEDecoder (core/sse.py)   upstream bytes -> SSE data payloads
    ChunkReader                payload -> the chunk dict it carries; `[DONE]` ends the answer; not JSON -> 502
    TranslateStage             chunk -> Anthropic event dicts (a StreamTranslator); its flush ends the answer
    FilterStage                events -> events, through the stream filters plugins registered for this stream
    EventEncoder               event -> its SSE bytes

A plugin's StreamFilter (ccproxy/interfaces.py) has the same contract, so each one is a stage of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

from orjson import loads as orjson_loads

from ccproxy.core._sse_py import encode_event
from ccproxy.core.jsoncodec import loads
from ccproxy.errors import ProxyError, UpstreamError

__all__ = [
    "DONE",
    "SHAPE_ERRORS",
    "ChunkReader",
    "EventEncoder",
    "FilterStage",
    "Stage",
    "TranslateStage",
    "Translator",
    "feed_all",
    "reread_chunk",
    "unreadable_chunk",
]

Event = dict[str, Any]
Chunk = dict[str, Any]

# The payload that ends an OpenAI-compatible stream.
DONE = b"[DONE]"
# What a chunk shape no check in the translator foresaw raises.
SHAPE_ERRORS = (AttributeError, IndexError, KeyError, TypeError)
# The events that end a message: the filters' flush lands before them, so what they held back is inside it.
_MESSAGE_END = ("message_delta", "message_stop")

_In = TypeVar("_In", contravariant=True)
_Out = TypeVar("_Out")
_T = TypeVar("_T")
_U = TypeVar("_U")


class Stage(Protocol[_In, _Out]):
    """One step of the stream path."""

    def feed(self, item: _In) -> list[_Out]:
        """The outputs `item` completes (none, one or several)."""
        ...

    def flush(self) -> list[_Out]:
        """What is still held back, once the input has ended."""
        ...


class Translator(Protocol):
    """Upstream chunks -> Anthropic events for one stream: core/stream.py's StreamTranslator for Chat Completions,
    or another API's (ccproxy/wire.py WireStreamTranslator)."""

    @property
    def done(self) -> bool:
        """True once message_stop or an error event has been produced."""
        ...

    @property
    def upstream_usage(self) -> dict[str, Any] | None:
        """The upstream's own last `usage` object, when its API reports one worth keeping (OpenRouter's cost)."""
        ...

    def start(self) -> list[Event]: ...

    def feed(self, chunk: Chunk) -> list[Event]: ...

    def feed_sse(self, chunk: Chunk) -> bytes:
        """`feed`, encoded: the fused path calls this."""
        ...

    def finish(self) -> list[Event]:
        """`data: [DONE]`."""
        ...

    def end_of_body(self) -> list[Event]: ...

    def replay(self, message: dict[str, Any]) -> list[Event]: ...

    def error_events(self, error: ProxyError) -> list[Event]: ...


def feed_all(stage: Stage[_T, _U], items: Iterable[_T]) -> list[_U]:
    """`stage.feed` of each item in turn: how one stage's outputs become the next stage's input."""
    out: list[_U] = []
    for item in items:
        out.extend(stage.feed(item))
    return out


def reread_chunk(payload: bytes) -> Any:
    """A payload orjson refused: what jsoncodec.loads reads (lone surrogates), else an UpstreamError (502)."""
    try:
        return loads(payload)
    except ValueError:
        raise UpstreamError("Upstream sent a malformed stream chunk", status=502) from None


def unreadable_chunk(exc: Exception) -> UpstreamError:
    """The upstream's fault, not ccproxy's: a chunk whose shape made the translator fail."""
    return UpstreamError(f"Upstream sent a stream chunk ccproxy cannot read ({type(exc).__name__})", status=502)


class ChunkReader:
    """An SSE data payload -> the upstream chunk it carries.

    `[DONE]` ends the answer as complete: `ended` is set and later payloads are not read. JSON that is not an object
    carries nothing and is skipped; a payload that is not JSON is an UpstreamError (502).
    """

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended = False

    def feed(self, payload: bytes) -> list[Chunk]:
        if self.ended:
            return []
        if payload == DONE:
            self.ended = True
            return []
        try:
            # orjson itself, and jsoncodec.loads only for what it refuses: one call less per chunk.
            chunk = orjson_loads(payload)
        except ValueError:
            chunk = reread_chunk(payload)
        return [chunk] if type(chunk) is dict else []

    def flush(self) -> list[Chunk]:
        return []


class TranslateStage:
    """Upstream chunks -> Anthropic events, by one StreamTranslator.

    `flush` ends the answer: as complete once `reader` has seen `[DONE]`, else as the end of the body (complete only
    after a finish reason: StreamTranslator.end_of_body raises an UpstreamError for a cut answer). A chunk whose
    shape the translator did not foresee is an UpstreamError (502), not a traceback.
    """

    __slots__ = ("reader", "translator")

    def __init__(self, translator: Translator, reader: ChunkReader) -> None:
        self.translator = translator
        self.reader = reader

    def feed(self, chunk: Chunk) -> list[Event]:
        try:
            return self.translator.feed(chunk)
        except SHAPE_ERRORS as exc:
            raise unreadable_chunk(exc) from None

    def flush(self) -> list[Event]:
        translator = self.translator
        try:
            return translator.finish() if self.reader.ended else translator.end_of_body()
        except SHAPE_ERRORS as exc:
            raise unreadable_chunk(exc) from None


class FilterStage:
    """Events through the stream's filters in order: what one filter returns is what the next one sees.

    The filters are flushed once, when the message's content is over: as the translator's `message_delta` (or a
    `message_stop` without one) arrives, before it is fed to them. What a filter releases then passes the filters
    after it and is sent inside the message, ahead of the stop reason and usage. A stream that fails ends with an
    error event that never passes the filters, so nothing is flushed after it. A filter's ProxyError propagates.
    """

    __slots__ = ("_filters", "_flushed")

    def __init__(self, filters: Sequence[Stage[Event, Event]]) -> None:
        self._filters = tuple(filters)
        self._flushed = False

    def feed(self, event: Event) -> list[Event]:
        return self.feed_many([event])

    def feed_many(self, events: list[Event]) -> list[Event]:
        """`feed_all(self, events)`, with each filter called once per event of the batch in turn."""
        if not self._flushed:
            for position, event in enumerate(events):
                if event.get("type") in _MESSAGE_END:
                    done = self._through(events[:position], 0)
                    done.extend(self.flush())
                    done.extend(self._through(events[position:], 0))
                    return done
        return self._through(events, 0)

    def flush(self) -> list[Event]:
        """Each filter's held-back events, passed through the filters after it; only the first call flushes."""
        if self._flushed:
            return []
        self._flushed = True
        events: list[Event] = []
        for position, stream_filter in enumerate(self._filters):
            events.extend(self._through(stream_filter.flush(), position + 1))
        return events

    def _through(self, events: list[Event], start: int) -> list[Event]:
        for stream_filter in self._filters[start:] if start else self._filters:
            passed: list[Event] = []
            for event in events:
                passed.extend(stream_filter.feed(event))
            events = passed
        return events


class EventEncoder:
    """An Anthropic event -> its SSE bytes (`encode_event`); holds nothing back."""

    __slots__ = ()

    def feed(self, event: Event) -> list[bytes]:
        return [encode_event(event)]

    def flush(self) -> list[bytes]:
        return []
