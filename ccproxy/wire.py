"""The seam for upstream APIs other than Chat Completions: a Wire converts one target's requests, answers and streams.

ccproxy speaks OpenAI Chat Completions to every backend by default, through the core's conversion and its fused
stream fast path (ccproxy/core/). A provider whose vendor offers another API for some models returns a `Wire` from
`Provider.wire(model)` (asked once per upstream model name, like `capabilities`); the pipeline then

- builds the upstream body with `Wire.convert_request(body, plan)` (instead of the core's `convert_request` and
  `Provider.adjust_request`: the wire owns the body) and POSTs it to `Wire.path` under the backend's base URL;
- reads a non-stream answer (a JSON object) with `Wire.convert_response(answer, ctx)`;
- translates a stream with `Wire.stream_translator(ctx)`, fed the JSON object of every SSE data payload by the
  core's StreamPipeline (core/relay.py): the same decode, filter, tap and encode stages, the same end-of-stream and
  error rules as Chat Completions. `WireStreamTranslator` below is the base class such a translator starts from.

The conversion helpers a wire most often needs are exported here too, so a plugin can build on the core's work (for
example convert to a Chat Completions body first, then reshape it) without importing `ccproxy.core` internals.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ccproxy.core.plan import RequestPlan, ResponseContext
from ccproxy.core.request import convert_request as chat_completions_request
from ccproxy.core.response import tool_input
from ccproxy.core.sse import encode_events
from ccproxy.core.stream import StreamTranslator, error_event
from ccproxy.core.usage import anthropic_usage, error_from_body
from ccproxy.errors import ProxyError, UpstreamError

__all__ = [
    "Event",
    "RequestPlan",
    "ResponseContext",
    "Wire",
    "WireStreamTranslator",
    "anthropic_usage",
    "chat_completions_request",
    "error_from_body",
    "tool_input",
    "unreadable",
]

Event = dict[str, Any]


class WireStreamTranslator(ABC):
    """Upstream stream chunks (the JSON object of each SSE data payload) -> Anthropic events; one per stream.

    Subclasses implement `feed` (the events for one chunk, after `self.start()`'s, nothing once `done`; raise a
    ProxyError for an error the upstream reports; call `finished()` after the message_stop of the upstream's last
    word) and `complete` (the body ended before that last word: the closing events of an answer that is complete
    all the same, or an UpstreamError for one that was cut off, which the client gets as an `error` event). The rest
    is the contract StreamPipeline relies on: `message_start` and `ping` first (`start`, once), a whole JSON answer
    replayed as events (`replay`), the error event that ends a failed stream (`error_events`), `end_of_body` and
    `finish` (`data: [DONE]`, which not every API sends) at the end of the body.
    """

    def __init__(self, ctx: ResponseContext) -> None:
        self.ctx = ctx
        # The opening events and the replay of a whole message are the Chat Completions translator's own.
        self._opening = StreamTranslator(ctx)
        self._started = False
        self._done = False

    @property
    def upstream_usage(self) -> dict[str, Any] | None:
        """The upstream's own usage object, for a reported cost (OpenRouter's `usage.cost`): None unless a subclass
        keeps one; the token counts reach the client through `message_delta`."""
        return None

    @property
    def done(self) -> bool:
        """True once message_stop or an error event has been produced; later input is ignored."""
        return self._done

    def start(self) -> list[Event]:
        """message_start and a ping: sent as soon as the upstream has answered 200."""
        if self._started:
            return []
        self._started = True
        return self._opening.start()

    @abstractmethod
    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        """The events for one upstream chunk."""

    @abstractmethod
    def complete(self) -> list[Event]:
        """The closing events (message_delta, message_stop) when the body ends before the upstream's last word,
        for an answer that is complete all the same; raise an UpstreamError when it is not."""

    def feed_sse(self, chunk: dict[str, Any]) -> bytes:
        """`feed`, encoded (the fused path of StreamPipeline calls this)."""
        return encode_events(self.feed(chunk))

    def finish(self) -> list[Event]:
        """`data: [DONE]` (which not every API sends): the end of the answer."""
        return self.end_of_body()

    def end_of_body(self) -> list[Event]:
        """The end of the upstream body; idempotent."""
        if self._done:
            return []
        events = self.start()
        events.extend(self.complete())
        self._done = True
        return events

    def replay(self, message: dict[str, Any]) -> list[Event]:
        """The events of a whole Anthropic message, for an upstream that answered with one JSON object."""
        if self._done:
            return []
        self._started = True
        self._done = True
        return self._opening.replay(message)

    def error_events(self, error: ProxyError) -> list[Event]:
        """The `error` event that ends a stream after a failure."""
        if self._done:
            return []
        self._done = True
        return [error_event(self.ctx, error)]

    def finished(self) -> None:
        """Mark the answer as ended (after its message_stop)."""
        self._done = True


class Wire(ABC):
    """How one backend speaks to its upstream for one model, when that is not Chat Completions.

    One instance may serve every request for its models (it holds no per-request state); `Provider.wire(model)` is
    asked once per upstream model name and the answer is kept by the backend.
    """

    #: Where requests go, relative to the backend's base URL (e.g. "/responses").
    path: ClassVar[str]

    @abstractmethod
    def convert_request(self, body: dict[str, Any], plan: RequestPlan) -> dict[str, Any]:
        """The upstream body for a validated Anthropic Messages body. Fill `plan.tool_names` with the tool names
        sent (chat_completions_request does) so answers map them back. Raise InvalidRequestError for what the
        upstream cannot take."""

    @abstractmethod
    def convert_response(self, answer: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
        """The Anthropic message for the upstream's non-stream answer (a JSON object). Raise UpstreamError for an
        error it reports or a shape it cannot read."""

    @abstractmethod
    def stream_translator(self, ctx: ResponseContext) -> WireStreamTranslator:
        """A new translator for one streamed answer."""


def unreadable(what: str, exc: Exception) -> UpstreamError:
    """The 502 for an upstream answer whose shape a wire did not foresee."""
    return UpstreamError(f"Upstream returned {what} ccproxy cannot read ({type(exc).__name__})", status=502)
