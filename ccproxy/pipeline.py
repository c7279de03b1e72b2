"""One /v1/messages call: validate -> guard -> route -> per target: convert -> send (fall back) -> translate.

No HTTP framing and no aiohttp objects here: a backend's upstream stack (ccproxy/upstream/) sends the bytes, and
its typed failures are mapped to client errors once, by `to_proxy_error`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ccproxy.backends import Backend
from ccproxy.core.jsoncodec import NestingError, dumps, loads
from ccproxy.core.nesting import NESTING_MESSAGE
from ccproxy.core.overflow import PROMPT_TOO_LONG
from ccproxy.core.plan import ModelCapabilities, RequestPlan, ResponseContext
from ccproxy.core.relay import JSON, SSE, StreamRelay, is_event_stream, not_a_stream, sniff
from ccproxy.core.request import convert_request
from ccproxy.core.response import convert_response, parse_completion
from ccproxy.core.sse import DEFAULT_MAX_LINE
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.core.usage import upstream_cost
from ccproxy.core.validate import validate_count_tokens_request, validate_messages_request
from ccproxy.errors import InvalidRequestError, ProxyError, UpstreamError
from ccproxy.events import RequestRecord
from ccproxy.filters import StreamFilters
from ccproxy.interfaces import (
    CacheBackend,
    Guardrail,
    GuardrailContext,
    Principal,
    ReasoningRequest,
    StreamContext,
    StreamFilter,
)
from ccproxy.observers import AttemptTag
from ccproxy.redaction import Redactor
from ccproxy.response_cache import CacheUse, ResponseCache, cache_headers, cache_use, confirm
from ccproxy.routing import MEMO_LIMIT, Route, Router, Target
from ccproxy.splice import SplicedPieces, Turn
from ccproxy.thinktags import ThinkTagFilter, split_think_tags
from ccproxy.tokens import TokenCounter
from ccproxy.upstream import (
    BackendUnavailable,
    Clock,
    RateLimitExceeded,
    UpstreamFailure,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamStatusError,
    can_fall_back,
    to_proxy_error,
)
from ccproxy.upstream.bounds import DEFAULT_MAX_BODY
from ccproxy.wire import Wire

log = logging.getLogger("ccproxy.pipeline")

# Bodies above this are tokenised in a worker thread so one big count does not stall every other request.
OFF_LOOP_COUNT_BYTES = 64 * 1024
COUNT_CACHE_TTL = 600.0
# A cheap stand-in for message_start's input_tokens; the exact figure arrives in message_delta.usage.
BYTES_PER_TOKEN_ESTIMATE = 4
# The share of a counted prompt kept free in a known context window (our tokenizer is not the server's).
WINDOW_MARGIN = 0.1
# Who served an answer (or failed it): response headers on JSON, SSE and error answers alike.
BACKEND_HEADER = "x-ccproxy-backend"
MODEL_HEADER = "x-ccproxy-upstream-model"
# Printable ASCII a header value may carry as it is; anything else in a (client-chosen) model name is %-encoded.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not raw:
        raise InvalidRequestError("Request body is empty; expected a JSON object")
    try:
        body = loads(raw)
    except NestingError:  # deeper than the parser goes; shallower bodies are measured by validation
        raise InvalidRequestError(NESTING_MESSAGE) from None
    except ValueError as exc:
        raise InvalidRequestError(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("Request body must be a JSON object")
    return body


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def served_headers(target: Target) -> dict[str, str]:
    """The response headers that say which backend and upstream model answered (or failed)."""
    return {
        BACKEND_HEADER: quote(target.backend, safe=_HEADER_SAFE),
        MODEL_HEADER: quote(target.model, safe=_HEADER_SAFE),
    }


@dataclass(frozen=True, slots=True)
class Limits:
    """The pipeline's share of the resource bounds (MAX_UPSTREAM_BODY_BYTES, MAX_SSE_LINE_BYTES)."""

    upstream_body: int = DEFAULT_MAX_BODY
    sse_line: int = DEFAULT_MAX_LINE


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)  # not frozen: made per request, and a frozen dataclass costs ~2 µs more to build
class Prepared:
    """A validated, guarded request and its route; each target converts it afresh when it is tried."""

    body: dict[str, Any]
    stream: bool
    route: Route
    guard: GuardrailContext
    message_id: str
    input_tokens_estimate: int
    record: RequestRecord | None = None
    cache: CacheUse | None = None  # None: the response cache is off
    # The prompt counted with the tokenizer, once a target with a known context window needed it.
    prompt_tokens: int | None = None
    raw: bytes = b""  # the body as the client sent it (splice.py finds the tools in it)
    turn: Turn | None = None  # where it stands in its conversation (splice.py): None when messages are not reused


@dataclass(slots=True)
class Sent:
    """The target that answered, its response (status line in, body unread) and what translating it needs."""

    target: Target
    response: UpstreamResponse
    context: ResponseContext
    headers: Mapping[str, str]  # served_headers(target), shared: never changed
    wire: Wire | None = None  # the API the answer is in (None: Chat Completions)

    def answer(self, raw: bytes) -> tuple[dict[str, Any], Any]:
        """The Anthropic message for a whole JSON answer, and the upstream's own usage object in it."""
        answer = parse_completion(raw)
        if self.wire is None:
            return convert_response(answer, self.context), answer.get("usage")
        return self.wire.convert_response(answer, self.context), answer.get("usage")


@dataclass(slots=True)
class Answer:
    """A non-stream answer: the Anthropic message and the headers that say who served it."""

    message: dict[str, Any]
    headers: Mapping[str, str]
    target: Target


@dataclass(slots=True, eq=False)  # hashed by identity: the running streams are a set (ccproxy/shutdown.py)
class OpenedStream:
    """The upstream's answer to a stream request, judged before the client has seen a byte."""

    sent: Sent
    # The event stream still to read; None when the upstream answered with one JSON completion.
    chunks: AsyncIterator[bytes] | None
    # What was already read of the stream to tell what it is.
    head: bytes = b""
    # The Anthropic message of that JSON completion, and the upstream's usage object in it.
    message: dict[str, Any] = field(default_factory=dict)
    usage: Any = None
    # Why the stream was ended from outside (shutdown's grace ran out): the error event the client gets.
    ended_by: ProxyError | None = None

    @property
    def headers(self) -> Mapping[str, str]:
        return self.sent.headers

    @property
    def target(self) -> Target:
        return self.sent.target

    async def aclose(self) -> None:
        """Finish the upstream response (drops the connection when the body is unfinished). Idempotent."""
        await self.sent.response.aclose()

    async def interrupt(self, error: ProxyError) -> None:
        """End the stream with `error`: the upstream connection is dropped, so the read in progress ends at once."""
        self.ended_by = error
        await self.aclose()


class MessagesPipeline:
    """Everything a messages or count_tokens request needs, built once per server process."""

    def __init__(
        self,
        *,
        backends: Mapping[str, Backend],
        router: Router,
        guardrails: Sequence[Guardrail],
        load_tokens: Callable[[], TokenCounter],
        cache: CacheBackend,
        redact: Redactor,
        stream_filters: StreamFilters | None = None,
        clock: Clock = time.monotonic,
        responses: ResponseCache | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.backends = backends
        self.clock = clock  # the upstream stack's clock: request deadlines are on it
        self.router = router
        self.guardrails = tuple(guardrails)
        # The tokenizer's ranks cost ~44 MB: loaded on the first count_tokens call, not at start (idle RSS).
        self._load_tokens = load_tokens
        self._tokens: TokenCounter | None = None
        self._tokens_lock = asyncio.Lock()
        self.cache = cache
        self.redact = redact
        self.stream_filters = stream_filters
        self.responses = responses  # the response cache (ccproxy/response_cache.py); None when off
        self.limits = limits
        self._served: dict[Target, Mapping[str, str]] = {}
        # The converted system prompt and tools of recent requests, as JSON bytes (splice.py).
        self.pieces = SplicedPieces()
        self._tools_amended = any(guardrail.amends_tools for guardrail in self.guardrails)
        self._messages_amended = any(guardrail.amends_messages for guardrail in self.guardrails)

    async def prepare(
        self,
        raw: bytes,
        headers: Mapping[str, str],
        request_id: str,
        record: RequestRecord | None = None,
        principal: Principal | None = None,
        cache_control: str | None = None,
    ) -> Prepared:
        """Parse, validate, guard and route one /v1/messages body; fill in `record` (observers) as it goes."""
        # The tools of a recent request are not parsed or validated again (splice.py), nor the messages a
        # conversation repeats (history.py), unless a guardrail may amend them (the parsed values are shared).
        reuse_messages = not self._messages_amended
        parsed = self.pieces.parse(raw, not self._tools_amended, reuse_messages)
        body = parse_json_body(raw) if parsed is None else parsed.body
        if parsed is None:
            validate_messages_request(body)
        else:  # what an earlier request had is not walked again: it passed then
            validate_messages_request(body, parsed.tools_reused, parsed.messages_reused)
        turn = self.pieces.learn_messages(raw, parsed, body) if reuse_messages else None
        stream = bool(body.get("stream"))
        if record is not None:
            record.client_model = body["model"]
            record.stream = stream
        guard = GuardrailContext(
            request_id=request_id,
            headers=headers,
            principal=principal,
            body_bytes=len(raw),
            reused_messages=0 if parsed is None else parsed.messages_reused,
        )
        for guardrail in self.guardrails:
            await guardrail.check_request(body, guard)
        route = self.router.resolve(body["model"])
        estimate = len(raw) // BYTES_PER_TOKEN_ESTIMATE
        cache = None if self.responses is None else cache_use(cache_control, request_id, record)
        return Prepared(body, stream, route, guard, new_message_id(), estimate, record, cache, raw=raw, turn=turn)

    def convert(
        self, prepared: Prepared, target: Target, wire: Wire | None = None, output_room: int | None = None
    ) -> tuple[bytes, ResponseContext]:
        """The upstream body for one target (its provider, capabilities and reasoning; in its `wire`'s API when it
        has one), and the context its answer is translated with (the tool-name map of this conversion).
        `output_room`: what the context window leaves for the output (`fit_window`); max_tokens is clamped to it."""
        backend = self.backends[target.backend]
        body = prepared.body
        capabilities = backend.capabilities(target.model)
        if output_room is not None:
            ceiling = capabilities.max_output_tokens
            room = output_room if ceiling is None else min(ceiling, output_room)
            capabilities = dataclasses.replace(capabilities, max_output_tokens=room)
        plan = RequestPlan(
            upstream_model=target.model,
            capabilities=capabilities,
            stream=prepared.stream,
            tool_names=ToolNameMap(),
            reasoning=backend.reasoning.configure(_reasoning_request(body, target.model, capabilities)),
        )
        context = ResponseContext(
            message_id=prepared.message_id,
            model=body["model"],
            input_tokens_estimate=prepared.input_tokens_estimate,
            tool_names=plan.tool_names,
            public_message=self.redact.message,
        )
        if wire is not None:  # other APIs reshape the whole body: nothing to splice
            return dumps(wire.convert_request(body, plan)), context
        adjust = backend.provider.adjust_request
        spliced = self.pieces.body(prepared.raw, body, plan, adjust, self._tools_amended, prepared.turn)
        if spliced is not None:
            return spliced, context
        return dumps(adjust(convert_request(body, plan), body)), context

    async def send(self, prepared: Prepared) -> Sent:
        """Walk the route's targets until one answers with a status line < 400.

        A target whose failure `can_fall_back` accepts (and that has a next one) passes to the next; any other
        failure, or the end of the chain, raises the client's error (see `_route_error`), with the headers naming
        the target it came from.
        """
        targets = prepared.route.targets
        failures: list[tuple[Target, UpstreamFailure]] = []
        for index, target in enumerate(targets):
            backend = self.backends[target.backend]
            wire = backend.wire(target.model)
            upstream = backend.upstream
            if upstream is None:
                raise RuntimeError(f"backend {backend.name!r} used before its upstream was built")
            try:
                window = backend.capabilities(target.model).context_window
                room = None if window is None else await self.fit_window(prepared, window)
                body, context = self.convert(prepared, target, wire, room)
                max_tokens = prepared.body.get("max_tokens")
                request = UpstreamRequest(
                    path=backend.path if wire is None else wire.path,
                    body=body,
                    stream=prepared.stream,
                    deadline=self.clock() + backend.status_wait,
                    tokens=prepared.input_tokens_estimate + (max_tokens if isinstance(max_tokens, int) else 0),
                    tag=None if prepared.record is None else AttemptTag(prepared.record, target.backend, target.model),
                )
                if prepared.cache is None:
                    response = await upstream.send(request)
                else:  # the response cache (a hit, an identical call in flight, or a new call it records)
                    assert self.responses is not None
                    response = await self.responses.send(
                        upstream.send, request, target.backend, target.model, prepared.cache
                    )
            except UpstreamFailure as exc:
                failures.append((target, exc))
                if can_fall_back(exc, has_next=index < len(targets) - 1):
                    following = targets[index + 1]
                    log.info("%s: %s failed (%s), trying %s", prepared.guard.request_id, target, exc.message, following)
                    continue
                raise self._route_error(prepared, failures) from None
            if prepared.record is not None:
                _note_target(prepared.record, target, index)
            headers = self._served_headers(target)
            if prepared.cache is not None:
                headers = cache_headers(headers, response)
            return Sent(target, response, context, headers, wire)
        raise AssertionError("a route has at least one target")  # pragma: no cover — the loop returns or raises

    async def fit_window(self, prepared: Prepared, window: int) -> int | None:
        """What a context window of `window` tokens leaves for the output of this request (None: the client's
        max_tokens fits anyway). A prompt that does not fit fails like the server's own context overflow, before
        anything is sent: the next target of the route is tried, and the last answers Anthropic's "prompt is too
        long", so Claude Code compacts instead of the server cutting the prompt or failing in its own words.

        The byte estimate settles most requests; a tight one is counted with the tokenizer (once per request). The
        server's tokenizer and chat template differ from ours, so WINDOW_MARGIN of the count is kept free.
        """
        max_tokens = prepared.body.get("max_tokens")
        wanted = max_tokens if isinstance(max_tokens, int) else 0
        if 2 * prepared.input_tokens_estimate + wanted <= window:
            return None
        if prepared.prompt_tokens is None:
            prepared.prompt_tokens = await self._count_prompt(prepared)
        prompt = prepared.prompt_tokens
        room = window - prompt - int(prompt * WINDOW_MARGIN)
        if room < 1:
            room = window - prompt
        if room < 1:
            overflow = PROMPT_TOO_LONG.format(prompt=prompt, limit=window)
            raise UpstreamStatusError(overflow, status=400, context_overflow=overflow)
        return room if room < wanted else None

    async def _count_prompt(self, prepared: Prepared) -> int:
        tokens = await self.token_counter()
        if prepared.input_tokens_estimate * BYTES_PER_TOKEN_ESTIMATE > OFF_LOOP_COUNT_BYTES:
            return await asyncio.get_running_loop().run_in_executor(None, tokens.count_request, prepared.body)
        return tokens.count_request(prepared.body)

    def _served_headers(self, target: Target) -> Mapping[str, str]:
        """served_headers(target), made once per target (routes hand out the same targets again and again)."""
        found = self._served.get(target)
        if found is None:
            found = served_headers(target)
            if len(self._served) < MEMO_LIMIT:
                self._served[target] = found
        return found

    def _route_error(self, prepared: Prepared, failures: list[tuple[Target, UpstreamFailure]]) -> ProxyError:
        """The client's error for a route that found no answer: the last failure when it ended the walk by itself
        (e.g. a 400), else the most informative of the chain — an upstream's own answer before no answer, and that
        before a backend skipped by its breaker or limiter; the latest of equals."""
        target, failure = failures[-1]
        if can_fall_back(failure):  # the chain ran out: choose
            target, failure = max(reversed(failures), key=lambda pair: _informative(pair[1]))
        if prepared.record is not None:
            _note_target(prepared.record, target, len(failures) - 1)
        error = to_proxy_error(failure)
        error.headers.update(served_headers(target))
        return error

    async def complete(self, prepared: Prepared) -> Answer:
        """A non-streaming call: the Anthropic message."""
        sent = await self.send(prepared)
        try:
            # `read` finishes the response whatever happens (the connection goes back to the pool or is dropped).
            message, usage = sent.answer(await sent.response.read())
            _note_cost(prepared.record, usage)
            if self._think_tags(sent.target):
                message = split_think_tags(message)
            if prepared.cache is not None:
                confirm(sent.response)
            for guardrail in self.guardrails:
                await guardrail.check_response(message, prepared.guard)
        except UpstreamFailure as exc:
            raise _with_headers(to_proxy_error(exc), sent) from None
        except ProxyError as exc:
            raise _with_headers(exc, sent) from None
        finally:
            if prepared.cache is not None:  # a shared call waits for this request's verdict until it is closed
                await sent.response.aclose()
        return Answer(message, sent.headers, sent.target)

    async def open_stream(self, prepared: Prepared) -> OpenedStream:
        """Start the upstream stream. HTTP errors, and answers that are no event stream (core/relay.py), surface
        here, before the client has seen a byte."""
        sent = await self.send(prepared)
        try:
            return await self._judge(sent)
        except UpstreamFailure as exc:
            await sent.response.aclose()
            raise _with_headers(to_proxy_error(exc), sent) from None
        except ProxyError as exc:
            await sent.response.aclose()
            raise _with_headers(exc, sent) from None

    async def _judge(self, sent: Sent) -> OpenedStream:
        """What kind of body came: an event stream by its label, else by its first bytes (core/relay.py)."""
        response = sent.response
        chunks = response.iter_bytes()
        content_type = media_type(response.headers.get("content-type", ""))
        if is_event_stream(content_type):
            return OpenedStream(sent, chunks)
        head = b""
        while True:
            data = await anext(chunks, b"")
            head += data
            kind = sniff(head, at_eof=not data)
            if kind is not None:
                break
        if kind == SSE:
            return OpenedStream(sent, chunks, head)
        if kind == JSON:
            message, usage = sent.answer(await _rest_bounded(head, chunks, self.limits.upstream_body))
            opened = OpenedStream(sent, None, message=message, usage=usage)
            confirm(sent.response)  # a no-op but for the response cache's shared calls
            return opened
        raise not_a_stream(kind, content_type)

    async def stream_events(self, prepared: Prepared, opened: OpenedStream) -> AsyncIterator[bytes]:
        """Anthropic SSE bytes for an opened upstream stream; failures after the first byte become an error event."""
        sent, wire = opened.sent, opened.sent.wire
        filters = self._stream_filters(prepared, sent)
        max_line = self.limits.sse_line
        if wire is None:
            relay = StreamRelay(sent.context, filters=filters, max_line=max_line)
        else:
            translator = wire.stream_translator(sent.context)
            relay = StreamRelay(
                sent.context, translator, filters=filters, convert=wire.convert_response, max_line=max_line
            )
        if opened.chunks is None:
            _note_cost(prepared.record, opened.usage)
            yield relay.replay(opened.message)
            return
        yield relay.start()
        try:
            if opened.head:
                encoded = relay.feed(opened.head)
                if encoded:
                    yield encoded
            if not relay.done:
                async for data in opened.chunks:
                    encoded = relay.feed(data)
                    if encoded:
                        yield encoded
                    if relay.done:
                        break
            if opened.ended_by is not None:  # the dropped connection may read like the end of the body
                raise opened.ended_by
            encoded = relay.end()
            if prepared.cache is not None:
                confirm(opened.sent.response)
        except UpstreamFailure as exc:
            log.warning("stream %s failed after start: %s", prepared.guard.request_id, exc.message)
            encoded = relay.fail(opened.ended_by or to_proxy_error(exc))
        except ProxyError as exc:
            log.warning("stream %s failed after start: %s", prepared.guard.request_id, exc.message)
            encoded = relay.fail(exc)
        except Exception:  # a bug must still end the stream the way clients expect
            log.exception("stream %s failed in translation", prepared.guard.request_id)
            encoded = relay.fail(ProxyError("Internal proxy error", status=500))
        finally:
            # Closing an unfinished response drops the connection, so the upstream stops generating when our client
            # went away mid-stream (or the answer ended before the body did).
            await opened.aclose()
            _note_cost(prepared.record, relay.upstream_usage)
        if encoded:
            yield encoded

    def _stream_filters(self, prepared: Prepared, sent: Sent) -> list[StreamFilter]:
        """The stream filters that want this stream; none (the fused fast path) when no factory is registered and
        the model writes no think tags. Think tags are split first, so plugins' filters see the final blocks."""
        own: list[StreamFilter] = [ThinkTagFilter()] if self._think_tags(sent.target) else []
        if self.stream_filters is None:
            return own
        context = StreamContext(prepared.guard.request_id, sent.context.model, sent.target.model, sent.target.backend)
        return own + self.stream_filters.select(context)

    def _think_tags(self, target: Target) -> bool:
        return self.backends[target.backend].capabilities(target.model).think_tags

    async def token_counter(self) -> TokenCounter:
        """The tokenizer, loaded once per process in a worker thread on first use."""
        if self._tokens is None:
            async with self._tokens_lock:
                if self._tokens is None:
                    self._tokens = await asyncio.get_running_loop().run_in_executor(None, self._load_tokens)
        return self._tokens

    async def count_tokens(self, raw: bytes, record: RequestRecord | None = None) -> dict[str, int]:
        """`{"input_tokens": N}` for a count_tokens body; answers are cached by body hash."""
        body = parse_json_body(raw)
        validate_count_tokens_request(body)
        if record is not None:
            record.client_model = body["model"]
        tokens = await self.token_counter()
        key = "count_tokens:" + tokens.encoding_name + ":" + hashlib.sha256(raw).hexdigest()
        cached = await self.cache.get(key)
        if isinstance(cached, int):
            return {"input_tokens": cached}
        if len(raw) > OFF_LOOP_COUNT_BYTES:
            count = await asyncio.get_running_loop().run_in_executor(None, tokens.count_request, body)
        else:
            count = tokens.count_request(body)
        await self.cache.set(key, count, COUNT_CACHE_TTL)
        return {"input_tokens": count}


async def _rest_bounded(head: bytes, chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """`head` and the rest of a body read whole, refused (502) past `limit` bytes instead of held in memory."""
    parts = [head]
    size = len(head)
    async for data in chunks:
        size += len(data)
        if size > limit:
            raise UpstreamError(
                f"Upstream answer is larger than {limit} bytes (MAX_UPSTREAM_BODY_BYTES); not read further", status=502
            )
        parts.append(data)
    return b"".join(parts)


def media_type(content_type: str) -> str:
    """A Content-Type header without its parameters, in lower case (`text/event-stream; charset=utf-8` ->
    `text/event-stream`)."""
    return content_type.partition(";")[0].strip().lower()


def _reasoning_request(
    body: Mapping[str, Any], upstream_model: str, capabilities: ModelCapabilities
) -> ReasoningRequest:
    output_config = body.get("output_config")
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    thinking = body.get("thinking")
    return ReasoningRequest(
        thinking=thinking if isinstance(thinking, dict) else None,
        effort=effort if isinstance(effort, str) else None,
        max_tokens=body.get("max_tokens"),
        upstream_model=upstream_model,
        capabilities=capabilities,
    )


def _informative(failure: UpstreamFailure) -> int:
    """How much a failure tells the client: the upstream's own answer, then no answer, then a local refusal."""
    if isinstance(failure, UpstreamStatusError):
        return 2
    if isinstance(failure, (BackendUnavailable, RateLimitExceeded)):
        return 0
    return 1


def _note_cost(record: RequestRecord | None, usage: Any) -> None:
    """The upstream's own cost figure into the record (observers price requests with it)."""
    if record is not None:
        record.upstream_cost_usd = upstream_cost(usage)


def _note_target(record: RequestRecord, target: Target, fallbacks: int) -> None:
    record.backend = target.backend
    record.upstream_model = target.model
    record.fallbacks = fallbacks


def _with_headers(error: ProxyError, sent: Sent) -> ProxyError:
    error.headers.update(sent.headers)
    return error
