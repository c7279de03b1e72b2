"""Stream filters around a StreamTranslator: the filtered (slower) path, taken only when a filter wants a stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ccproxy.core.sse import encode_events
from ccproxy.errors import ProxyError
from ccproxy.hookspecs import StreamFilterFactory
from ccproxy.interfaces import StreamContext, StreamFilter

Event = dict[str, Any]


class EventSource(Protocol):
    """What the stream loop needs of a translator: a StreamTranslator, or one wrapped in filters."""

    @property
    def done(self) -> bool: ...

    def start(self) -> list[Event]: ...

    def feed_sse(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self) -> list[Event]: ...

    def end_of_body(self) -> list[Event]: ...

    def replay(self, message: dict[str, Any]) -> list[Event]: ...

    def error_events(self, error: ProxyError) -> list[Event]: ...


class StreamTranslatorLike(EventSource, Protocol):
    def feed(self, chunk: dict[str, Any]) -> list[Event]: ...


class FilterChain:
    """Events through each filter in turn; what one filter returns is what the next one sees."""

    __slots__ = ("filters",)

    def __init__(self, filters: Sequence[StreamFilter]) -> None:
        self.filters = tuple(filters)

    def feed(self, events: list[Event]) -> list[Event]:
        for stream_filter in self.filters:
            passed: list[Event] = []
            for event in events:
                passed.extend(stream_filter.feed(event))
            events = passed
        return events

    def flush(self) -> list[Event]:
        """Each filter's held-back events, passed through the filters after it."""
        events: list[Event] = []
        for position, stream_filter in enumerate(self.filters):
            released = stream_filter.flush()
            for later in self.filters[position + 1 :]:
                released = [out for event in released for out in later.feed(event)]
            events.extend(released)
        return events


class FilteredTranslator:
    """A StreamTranslator whose events pass the request's filters before they are encoded.

    Same surface as the translator for the stream loop. The `error` event of a failed stream bypasses the filters:
    text they hold back is dropped with the message the client discards.
    """

    __slots__ = ("_chain", "_flushed", "_translator")

    def __init__(self, translator: StreamTranslatorLike, chain: FilterChain) -> None:
        self._translator = translator
        self._chain = chain
        self._flushed = False

    @property
    def done(self) -> bool:
        return self._translator.done

    def start(self) -> list[Event]:
        return self._chain.feed(self._translator.start())

    def feed_sse(self, chunk: dict[str, Any]) -> bytes:
        return encode_events(self._chain.feed(self._translator.feed(chunk)))

    def finish(self) -> list[Event]:
        return self._ending(self._translator.finish())

    def end_of_body(self) -> list[Event]:
        return self._ending(self._translator.end_of_body())

    def replay(self, message: dict[str, Any]) -> list[Event]:
        return self._ending(self._translator.replay(message))

    def _ending(self, events: list[Event]) -> list[Event]:
        events = self._chain.feed(events)
        failed = bool(events) and events[-1].get("type") == "error"  # nothing may follow an error event
        if not self._flushed and self._translator.done and not failed:
            self._flushed = True
            events.extend(self._chain.flush())
        return events

    def error_events(self, error: ProxyError) -> list[Event]:
        return self._translator.error_events(error)


class StreamFilters:
    """The registered filter factories; asked once per streamed answer which filters it needs."""

    __slots__ = ("factories",)

    def __init__(self, factories: Sequence[StreamFilterFactory]) -> None:
        self.factories = tuple(factories)

    def wrap(self, translator: StreamTranslatorLike, context: StreamContext) -> EventSource:
        """`translator` wrapped in the filters that want this stream, or `translator` itself (the fast path)."""
        filters = [made for factory in self.factories if (made := factory(context)) is not None]
        return FilteredTranslator(translator, FilterChain(filters)) if filters else translator


def stream_filters_or_none(factories: Sequence[StreamFilterFactory]) -> StreamFilters | None:
    """None when nothing is registered: the stream loop then never builds a StreamContext."""
    return StreamFilters(factories) if factories else None
