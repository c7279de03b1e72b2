"""The registered stream filter factories, asked once per streamed answer which filters it needs."""

from __future__ import annotations

from collections.abc import Sequence

from ccproxy.hookspecs import StreamFilterFactory
from ccproxy.interfaces import StreamContext, StreamFilter


class StreamFilters:
    """The factories plugins registered (ccproxy_register_stream_filters), in registration order.

    The filters themselves run in the core's filter stage (ccproxy/core/stages.py: FilterStage).
    """

    __slots__ = ("factories",)

    def __init__(self, factories: Sequence[StreamFilterFactory]) -> None:
        self.factories = tuple(factories)

    def select(self, context: StreamContext) -> list[StreamFilter]:
        """A fresh filter from each factory that wants this stream; none keeps the stream on the fused fast path."""
        return [made for factory in self.factories if (made := factory(context)) is not None]


def stream_filters_or_none(factories: Sequence[StreamFilterFactory]) -> StreamFilters | None:
    """None when nothing is registered: the stream loop then never builds a StreamContext."""
    return StreamFilters(factories) if factories else None
