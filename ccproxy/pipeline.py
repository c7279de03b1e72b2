"""One /v1/messages call: validate -> guard -> convert -> send -> translate. No HTTP framing here."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ccproxy.core.jsoncodec import NestingError, dumps, loads
from ccproxy.core.nesting import NESTING_MESSAGE
from ccproxy.core.plan import ModelCapabilities, RequestPlan, ResponseContext
from ccproxy.core.relay import JSON, SSE, StreamRelay, is_event_stream, not_a_stream, sniff
from ccproxy.core.request import convert_request
from ccproxy.core.response import convert_response
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.core.validate import validate_count_tokens_request, validate_messages_request
from ccproxy.errors import InvalidRequestError, ProxyError
from ccproxy.events import RequestRecord
from ccproxy.filters import StreamFilters
from ccproxy.interfaces import (
    CacheBackend,
    Guardrail,
    GuardrailContext,
    Provider,
    ReasoningConfigurator,
    ReasoningRequest,
    StreamContext,
    StreamFilter,
)
from ccproxy.redaction import Redactor
from ccproxy.routing import ModelRouter
from ccproxy.tokens import TokenCounter
from ccproxy.transport import Transport

log = logging.getLogger("ccproxy.pipeline")

# Bodies above this are tokenised in a worker thread so one big count does not stall every other request.
OFF_LOOP_COUNT_BYTES = 64 * 1024
COUNT_CACHE_TTL = 600.0
# A cheap stand-in for message_start's input_tokens; the exact figure arrives in message_delta.usage.
BYTES_PER_TOKEN_ESTIMATE = 4


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


@dataclass(frozen=True, slots=True)
class Prepared:
    """A converted request, ready to send."""

    body: bytes
    stream: bool
    upstream_model: str
    context: ResponseContext
    guard: GuardrailContext


@dataclass(frozen=True, slots=True)
class OpenedStream:
    """The upstream's answer to a stream request, judged before the client has seen a byte."""

    # The event stream still to read; None when the upstream answered with one JSON completion.
    response: aiohttp.ClientResponse | None
    # What was already read of the stream to tell what it is.
    head: bytes = b""
    # The Anthropic message of that JSON completion.
    message: dict[str, Any] = field(default_factory=dict)


class MessagesPipeline:
    """Everything a messages or count_tokens request needs, built once per server process."""

    def __init__(
        self,
        *,
        provider: Provider,
        transport: Transport,
        router: ModelRouter,
        reasoning: ReasoningConfigurator,
        guardrails: Sequence[Guardrail],
        load_tokens: Callable[[], TokenCounter],
        cache: CacheBackend,
        redact: Redactor,
        stream_filters: StreamFilters | None = None,
    ) -> None:
        self.provider = provider
        self.transport = transport
        self.router = router
        self.reasoning = reasoning
        self.guardrails = tuple(guardrails)
        # The tokenizer's ranks cost ~44 MB: loaded on the first count_tokens call, not at start (idle RSS).
        self._load_tokens = load_tokens
        self._tokens: TokenCounter | None = None
        self._tokens_lock = asyncio.Lock()
        self.cache = cache
        self.redact = redact
        self.stream_filters = stream_filters
        self._capabilities: dict[str, ModelCapabilities] = {}

    def capabilities(self, upstream_model: str) -> ModelCapabilities:
        found = self._capabilities.get(upstream_model)
        if found is None:
            found = self._capabilities[upstream_model] = self.provider.capabilities(upstream_model)
        return found

    async def prepare(
        self, raw: bytes, headers: Mapping[str, str], request_id: str, record: RequestRecord | None = None
    ) -> Prepared:
        """Parse, validate, guard and convert one /v1/messages body; fill in `record` (observers) as it goes."""
        body = parse_json_body(raw)
        validate_messages_request(body)
        if record is not None:
            record.client_model = body["model"]
            record.stream = bool(body.get("stream"))
        guard = GuardrailContext(request_id=request_id, headers=headers)
        for guardrail in self.guardrails:
            await guardrail.check_request(body, guard)
        upstream_model = self.router.resolve(body["model"])
        if record is not None:
            record.upstream_model = upstream_model
        capabilities = self.capabilities(upstream_model)
        stream = bool(body.get("stream"))
        plan = RequestPlan(
            upstream_model=upstream_model,
            capabilities=capabilities,
            stream=stream,
            tool_names=ToolNameMap(),
            reasoning=self.reasoning.configure(self._reasoning_request(body, upstream_model, capabilities)),
        )
        converted = self.provider.adjust_request(convert_request(body, plan), body)
        context = ResponseContext(
            message_id=new_message_id(),
            model=body["model"],
            input_tokens_estimate=len(raw) // BYTES_PER_TOKEN_ESTIMATE,
            tool_names=plan.tool_names,
            public_message=self.redact.message,
        )
        payload = dumps(converted)
        return Prepared(payload, stream, upstream_model, context, guard)

    @staticmethod
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

    async def complete(self, prepared: Prepared) -> dict[str, Any]:
        """A non-streaming call: the Anthropic message."""
        completion = await self.transport.post_json(prepared.body)
        message = convert_response(completion, prepared.context)
        for guardrail in self.guardrails:
            await guardrail.check_response(message, prepared.guard)
        return message

    async def open_stream(self, prepared: Prepared) -> OpenedStream:
        """Start the upstream stream. HTTP errors, and answers that are no event stream (core/relay.py), surface
        here, before the client has seen a byte."""
        response = await self.transport.post(prepared.body)
        if is_event_stream(response.content_type):
            return OpenedStream(response=response)
        kind, head = await self._sniff(response)
        if kind == SSE:
            return OpenedStream(response=response, head=head)
        if kind == JSON:
            completion = await self.transport.read_json(response, head)
            return OpenedStream(None, message=convert_response(completion, prepared.context))
        response.close()
        raise not_a_stream(kind, response.content_type)

    async def _sniff(self, response: aiohttp.ClientResponse) -> tuple[str, bytes]:
        """The kind of a body whose content type does not say, from its first bytes, and those bytes."""
        head = b""
        while True:
            data = await self.transport.read_some(response)
            head += data
            kind = sniff(head, at_eof=not data)
            if kind is not None:
                return kind, head

    async def stream_events(self, prepared: Prepared, opened: OpenedStream) -> AsyncIterator[bytes]:
        """Anthropic SSE bytes for an opened upstream stream; failures after the first byte become an error event."""
        relay = StreamRelay(prepared.context, filters=self._stream_filters(prepared))
        if opened.response is None:
            yield relay.replay(opened.message)
            return
        yield relay.start()
        try:
            async for data in self.transport.iter_bytes(opened.response, opened.head):
                encoded = relay.feed(data)
                if encoded:
                    yield encoded
                if relay.done:
                    break
            encoded = relay.end()
        except ProxyError as exc:
            log.warning("stream %s failed after start: %s", prepared.guard.request_id, exc.message)
            encoded = relay.fail(exc)
        except Exception:  # a bug must still end the stream the way clients expect
            log.exception("stream %s failed in translation", prepared.guard.request_id)
            encoded = relay.fail(ProxyError("Internal proxy error", status=500))
        if encoded:
            yield encoded

    def _stream_filters(self, prepared: Prepared) -> list[StreamFilter]:
        """The stream filters that want this stream; none (the fused fast path) when no factory is registered."""
        if self.stream_filters is None:
            return []
        context = StreamContext(prepared.guard.request_id, prepared.context.model, prepared.upstream_model)
        return self.stream_filters.select(context)

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
