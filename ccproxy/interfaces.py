"""The base classes plugins implement: providers, caches, reasoning, guardrails, stream filters, observers, auth."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ccproxy.core.plan import ModelCapabilities
from ccproxy.events import CacheEvent, RequestRecord, UpstreamAttempt


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What a provider is configured with: the core settings plus its own `[plugins.<name>]` table."""

    base_url: str
    api_key: str | None
    options: Mapping[str, Any]
    request_timeout: float = 600.0
    connect_timeout: float = 10.0


class Provider(ABC):
    """An upstream that speaks OpenAI Chat Completions.

    A provider is created once per app (not per request). It answers what a model accepts, where requests go and
    which headers they carry, and may adjust the converted body for its vendor's quirks.
    """

    #: The name users select with `provider = "<name>"` in plugins.toml.
    name: ClassVar[str]

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    def capabilities(self, model: str) -> ModelCapabilities:
        """What `model` accepts. Called once per upstream model name; the answer is cached by the app."""

    def chat_completions_url(self) -> str:
        """The full URL requests are POSTed to."""
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def headers(self) -> dict[str, str]:
        """Headers sent with every upstream request (auth included). Computed once per app."""
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def adjust_request(self, body: dict[str, Any], anthropic_request: Mapping[str, Any]) -> dict[str, Any]:
        """Last word on the converted OpenAI body before it is sent (vendor extras). Default: unchanged."""
        return body


class CacheBackend(ABC):
    """A shared key/value store with expiry: memory by default, Redis or others from plugins.

    Values are JSON-serialisable. Every method is async so that networked backends fit the same contract.
    """

    name: ClassVar[str]

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """The value stored under `key`, or None when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value`; `ttl` seconds until it expires (None = the backend's default)."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget `key` (no error when absent)."""

    @abstractmethod
    async def clear(self) -> int:
        """Forget everything; returns how many entries were removed."""

    @abstractmethod
    async def stats(self) -> dict[str, Any]:
        """Counters for the cache endpoints: at least `backend`, `entries`, `hits`, `misses`."""

    async def close(self) -> None:  # noqa: B027 — optional hook, a no-op for in-process backends
        """Release connections when the server stops."""


@dataclass(frozen=True, slots=True)
class ReasoningRequest:
    """The thinking-related parts of one Anthropic request, as the reasoning configurator sees them."""

    thinking: Mapping[str, Any] | None
    effort: str | None  # output_config.effort
    max_tokens: int | None
    upstream_model: str
    capabilities: ModelCapabilities


class ReasoningConfigurator(ABC):
    """Turns Anthropic `thinking` / `output_config.effort` into upstream request fields."""

    @abstractmethod
    def configure(self, request: ReasoningRequest) -> dict[str, Any]:
        """Top-level fields to merge into the OpenAI body, e.g. `{"reasoning_effort": "high"}`; `{}` for none."""


@dataclass(frozen=True, slots=True)
class GuardrailContext:
    """Who is asking: the request id and the client's headers (secrets removed)."""

    request_id: str
    headers: Mapping[str, str]


class Guardrail(ABC):
    """A check on requests (and optionally responses). Raise a `ccproxy.errors.ProxyError` to refuse."""

    name: ClassVar[str]

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:  # noqa: B027
        """Inspect (or amend in place) the Anthropic request before conversion. Default: allow."""

    async def check_response(self, message: dict[str, Any], context: GuardrailContext) -> None:  # noqa: B027
        """Inspect a complete non-streaming Anthropic response before it is returned. Default: allow."""


@dataclass(frozen=True, slots=True)
class StreamContext:
    """What a stream filter factory knows about the streamed request it is asked to filter."""

    request_id: str
    client_model: str  # the model the client asked for
    upstream_model: str | None = None
    backend: str | None = None  # the backend serving it (None until named backends exist)


class StreamFilter(ABC):
    """One streamed answer's Anthropic events, rewritten on their way to the client; one instance per stream.

    `feed` receives every event in order (`message_start` ... `message_stop`) as plain dicts and returns the events
    to pass on: unchanged, amended, dropped, split, or held back and released later. A filter that holds text back
    must release it before the `content_block_stop` of its block, which it sees in `feed`. Raise a
    `ccproxy.ProxyError` to end the stream with an `error` event. The `error` event of a failed stream bypasses
    filters.
    """

    @abstractmethod
    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to pass on for `event` (often `[event]`)."""

    def flush(self) -> list[dict[str, Any]]:
        """Whatever is still held back, called once after the last event. Default: nothing."""
        return []


class Observer:
    """Receives a record of what happened. Methods are plain, synchronous and must not block (no IO on the loop:
    queue the record and write it elsewhere). An observer that raises is logged and never fails a request."""

    def request_done(self, record: RequestRecord) -> None:
        """One /v1/messages or count_tokens request has finished (answered, failed, or the client went away)."""

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        """One attempt to call an upstream finished (retries and fallbacks make several per request)."""

    def cache_event(self, event: CacheEvent) -> None:
        """A cache was consulted or written."""


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What an authenticator sees of one request: never the body."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    remote_addr: str


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as an authenticator established it. `key_id` is a short, non-secret identifier for logs and
    records; `models` (requested-model globs) and `rpm` / `tpm` are limits for later stages to apply."""

    key_id: str
    name: str = ""
    models: tuple[str, ...] | None = None  # None = every model
    rpm: int | None = None
    tpm: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Authenticator(ABC):
    """Decides who is calling a /v1/* endpoint. Registered authenticators are asked in order; the first Principal
    wins. When none answers with one, the request gets 401 authentication_error."""

    @abstractmethod
    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """The caller, or None when this authenticator does not recognise the request. Raise a
        `ccproxy.ProxyError` to refuse with a status of your own (e.g. 429 over budget)."""
