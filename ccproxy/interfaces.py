"""The base classes plugins implement: providers, caches, reasoning, guardrails, stream filters, observers, auth."""

from __future__ import annotations

import base64
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

from ccproxy.core.plan import ModelCapabilities
from ccproxy.events import (
    BreakerChange,
    CacheEvent,
    EventBatch,
    GuardrailEvent,
    LimiterWait,
    RequestRecord,
    UpstreamAttempt,
)

if TYPE_CHECKING:
    from ccproxy.quota import LimitStore
    from ccproxy.upstream.stack import UpstreamStates
    from ccproxy.usage import SharedUsage
    from ccproxy.wire import Wire

if TYPE_CHECKING:
    from ccproxy.upstream import Upstream

# Header names whose values are credentials (Authorization, x-api-key, api-key, cookies, tokens, secrets).
_CREDENTIAL_HEADER = re.compile(r"authorization|key|token|secret|cookie|password", re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"(?P<scheme>bearer|basic|token) (?P<value>\S+)", re.IGNORECASE)


def _credential_values(header_value: str) -> list[str]:
    """The secret parts of a credential header: the value after its scheme; for Basic also the password."""
    scheme = _AUTH_SCHEME.fullmatch(header_value)
    if scheme is None:
        return [header_value]
    value = scheme["value"]
    if scheme["scheme"].lower() != "basic":
        return [value]
    try:
        user_password = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return [value]
    return [value, user_password, user_password.partition(":")[2]]


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """HTTP basic auth for the upstream, from `user:password@` in its base URL (already percent-decoded)."""

    user: str = field(repr=False)
    password: str = field(repr=False)

    def authorization(self) -> str:
        """The `Authorization` header value (RFC 7617, UTF-8)."""
        return f"Basic {self.token()}"

    def token(self) -> str:
        """`user:password` in base64, as the header carries it."""
        return base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What a provider instance is configured with: its backend's table, base URL and key already resolved.

    `options` are the table's keys ccproxy does not know itself, validated by the provider's `options_model`.
    `base_url` never carries credentials: `user:password@` in the configured URL arrives as `basic_auth`.
    """

    base_url: str
    api_key: str | None = field(repr=False)
    options: Mapping[str, Any] = field(repr=False)
    request_timeout: float = 600.0
    connect_timeout: float = 10.0
    basic_auth: BasicCredentials | None = field(default=None, repr=False)
    name: str = "default"  # the backend's name
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # the table's `headers`, sent every time


class Provider(ABC):
    """An upstream that speaks OpenAI Chat Completions.

    A provider is instantiated once per backend that names it (not per request), with that backend's
    ProviderConfig. It answers what a model accepts, where requests go and which headers they carry, and may adjust
    the converted body for its vendor's quirks.
    """

    #: The name users select with `provider = "<name>"` in a `[backends.<name>]` table.
    name: ClassVar[str]
    #: Whether the vendor wants a key. Even then none is asked for on a loopback / private / `.local` host, unless
    #: the table says `api_key_required = true`.
    needs_key: ClassVar[bool] = True
    #: The environment variable a backend's key is read from when its table has no `api_key`.
    key_env_var: ClassVar[str | None] = None
    #: The base URL of a backend whose table has no `base_url` (None: the table must give one).
    default_base_url: ClassVar[str | None] = None
    #: Validates the provider options (the table's keys ccproxy does not know); errors name the key. None: the
    #: provider takes no options, and any unknown key in its table is an error.
    options_model: ClassVar[type[BaseModel] | None] = None
    #: The reasoning configurator its backends use unless their table names one (None: the global default).
    default_reasoning: ClassVar[str | None] = None

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    def capabilities(self, model: str) -> ModelCapabilities:
        """What `model` accepts. Called once per upstream model name; the answer is cached by the app."""

    def chat_completions_url(self) -> str:
        """The full URL requests are POSTed to."""
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def headers(self) -> dict[str, str]:
        """Headers sent with every upstream request (auth and the table's `headers` included). Computed once per
        backend."""
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.config.api_key:
            headers["authorization"] = f"Bearer {self.config.api_key}"
        elif self.config.basic_auth is not None:
            headers["authorization"] = self.config.basic_auth.authorization()
        headers.update(self.config.headers)
        return headers

    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a client or a log line: the API key, a password in the base URL and the
        credentials among `headers()` (their values without an auth scheme such as `Bearer`). Called once per app;
        override to add more."""
        found = [self.config.api_key] if self.config.api_key else []
        password = urlsplit(self.config.base_url).password  # as written in the URL, percent-encoded
        if password:
            found += [password, unquote(password)]
        for name, value in self.headers().items():
            if _CREDENTIAL_HEADER.search(name):
                found.extend(_credential_values(value))
        return tuple(found)

    def adjust_request(self, body: dict[str, Any], anthropic_request: Mapping[str, Any]) -> dict[str, Any]:
        """Last word on the converted OpenAI body before it is sent (vendor extras). Default: unchanged. Not called
        for a model served through a `wire` (which owns its body). `body["tools"]`, a leading system message and the
        messages a conversation repeats from its last turn may be already serialised JSON (`orjson.Fragment`, cached
        once per distinct content, one fragment possibly holding several messages: ccproxy/splice.py,
        ccproxy/history.py): add, remove or replace them, but do not read into them; change no message in place."""
        return body

    def transport(self) -> Upstream | None:
        """An in-process Upstream that answers this backend's requests instead of the network (the demo provider's
        canned answers); None (the default): ccproxy's aiohttp transport to `base_url` with `headers()`. Called once
        per backend when the app is built; retries, breaker and limits are built around it all the same, and
        `list_models` receives it."""
        return None

    def wire(self, model: str) -> Wire | None:
        """The API `model` is spoken to in, when it is not Chat Completions (ccproxy/wire.py); None (the default):
        Chat Completions, through the core's conversion and fast path. Called once per upstream model name; the
        answer is kept by the backend."""
        return None

    async def list_models(self, upstream: Upstream) -> Sequence[str] | None:
        """The upstream model names this backend serves, for GET /v1/models (listed there as `backend:model`);
        None when the provider cannot list them (the default).

        `upstream` is the backend's bare transport (its base URL, headers and timeouts; no retries): send e.g.
        `UpstreamRequest(path="/models", body=b"", stream=False, deadline=..., method="GET")` and read the answer.
        Called at most every few minutes; raising (an UpstreamFailure, or anything else) is logged, never fatal.
        """
        return None


class CacheBackend(ABC):
    """A shared key/value store with expiry: memory by default, Redis or others from plugins.

    Values are JSON-serialisable. Every method is async so that networked backends fit the same contract.
    """

    name: ClassVar[str]
    #: Whether other processes and instances see the same entries (Redis: yes). The response cache then takes a
    #: lock with `add` so that one process calls upstream for identical concurrent requests.
    shared: ClassVar[bool] = False

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """The value stored under `key`, or None when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value`; `ttl` seconds until it expires (None = the backend's default)."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Forget `key` (no error when absent)."""

    async def add(self, key: str, value: Any, ttl: float) -> bool:
        """Store `value` only if `key` holds nothing; whether it did. The response cache's cross-process lock: a
        shared backend makes this atomic (Redis: SET NX PX) and answers True when it cannot tell (store down), so
        the caller goes ahead on its own. Default: `get`, then `set` (atomic within one event loop only)."""
        if await self.get(key) is not None:
            return False
        await self.set(key, value, ttl)
        return True

    @abstractmethod
    async def clear(self) -> int:
        """Forget everything; returns how many entries were removed."""

    @abstractmethod
    async def stats(self) -> dict[str, Any]:
        """Counters for the cache endpoints: at least `backend`, `entries`, `hits`, `misses`."""

    async def open(self) -> None:  # noqa: B027 — optional hook, a no-op for in-process backends
        """Open connections at server start, on the server's event loop (a factory runs before that loop exists).
        Called once per server process, before the startup hooks; must not raise for an unreachable store (serve
        without it and say so)."""

    async def close(self) -> None:  # noqa: B027 — optional hook, a no-op for in-process backends
        """Release connections when the server stops."""

    async def ready(self) -> str | None:
        """For `GET /ready`: None when the store can be used now, else what is wrong (e.g. "Redis unreachable").
        In-process backends are always ready (the default)."""
        return None

    def shared_states(self) -> UpstreamStates | None:
        """The stores the upstream stack's circuit breakers and rate limiters should keep their state in, when this
        backend can share it between processes and instances (e.g. Redis); None (the default): every process keeps
        its own, in memory. Called once when the app is built; the stores may only be used after `open()`."""
        return None

    def shared_limit_store(self) -> LimitStore | None:
        """The store the client keys' rpm, tpm and budgets should count in, when this backend can share it between
        processes and instances (e.g. Redis); None (the default): every process counts on its own. Asked at server
        start, after `open()`."""
        return None

    def shared_usage_store(self) -> SharedUsage | None:
        """Where GET /v1/usage's totals should be summed for every worker and instance, when this backend can share
        them (e.g. Redis); None (the default): the server's own workers only. Asked at server start, after
        `open()`."""
        return None


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
    """Who is asking: the request id, the client's headers (secrets removed), the Principal an authenticator
    established (None without authenticators) and the size of the request body as received, in bytes.

    `reused_messages`: how many of the request's first messages are the very objects of an earlier request of its
    conversation, reused as parsed then and unchanged since (ccproxy/history.py; only when every guardrail declares
    `amends_messages = False`, else 0). A guardrail may remember, by identity, what it found in those."""

    request_id: str
    headers: Mapping[str, str]
    principal: Principal | None = None
    body_bytes: int = 0
    reused_messages: int = 0


class Guardrail(ABC):
    """A check on requests (and optionally responses). Raise a `ccproxy.errors.ProxyError` to refuse."""

    name: ClassVar[str]
    # False: `check_request` never changes the request's `tools`, so their parse and conversion are reused by the
    # bytes the client sent, the parsed list shared between requests (ccproxy/splice.py). True, the safe default:
    # the tools are parsed afresh, and the reused conversion is also compared with them.
    amends_tools: ClassVar[bool] = True
    # False: `check_request` never changes a message, nor anything inside one (it may read them, refuse, or put
    # another message in an entry of `body["messages"]`, a list of the request's own), so the messages a
    # conversation repeats from its last turn are reused as parsed then, shared between requests
    # (ccproxy/history.py). True, the safe default: every request's messages are parsed afresh.
    amends_messages: ClassVar[bool] = True

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
    filters. Filters run in the core's filter stage (ccproxy/core/stages.py), after the translator.
    """

    @abstractmethod
    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events to pass on for `event` (often `[event]`)."""

    def flush(self) -> list[dict[str, Any]]:
        """Whatever is still held back, sent inside the message. Called once, when its content is over: after the last
        block's `content_block_stop` and before `message_delta` and `message_stop` (which `feed` then still gets);
        never for a stream that ended in an error. Default: nothing."""
        return []


class Observer:
    """Receives a record of what happened. Methods are plain, synchronous and must not block (no IO on the loop:
    queue the record and write it elsewhere). An observer that raises is logged and never fails a request.

    `deferred = True` lets ccproxy deliver this observer's events in batches instead of as they happen: at most
    20 ms late, in the order they happened, all of a batch to this observer in a row (which costs less per request:
    its code stays in the CPU's caches), and at once before ccproxy's own readers of sums (`/metrics`,
    `/v1/metrics`, `/v1/usage`) and at shutdown. Immediate observers (the default) are called first, at the event,
    and see the record as it is then: an observer that must act before the next request does (a budget) stays
    immediate. A deferred observer must not expect `request_started` before the request has finished. It gets the
    kinds of event whose methods it overrides; overriding `take_batch` too, it gets each batch whole instead.
    """

    deferred = False
    #: True for an observer that only fills in fields of the finished record for the others (the built-in pricing
    #: sets `cost_usd`): it is called at the event when an immediate observer reads finished records, else first in
    #: each batch of the deferred ones. Registered before the observers that read what it fills in.
    fills_in_record = False

    def request_started(self, record: RequestRecord) -> None:
        """A /v1/messages or count_tokens request began; `record` holds little yet (its id, key id, endpoint) and is
        the object `request_done` later receives, filled in."""

    def request_done(self, record: RequestRecord) -> None:
        """One /v1/messages or count_tokens request has finished (answered, failed, or the client went away)."""

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        """One attempt to call an upstream finished (retries and fallbacks make several per request)."""

    def cache_event(self, event: CacheEvent) -> None:
        """A cache was consulted or written."""

    def breaker_change(self, event: BreakerChange) -> None:
        """A backend's circuit breaker was seen in a new state (reported on change, not per request)."""

    def limiter_wait(self, event: LimiterWait) -> None:
        """A request waited for a backend's local rate limiter."""

    def guardrail_event(self, event: GuardrailEvent) -> None:
        """A guardrail refused or changed a request or an answer (what a metrics plugin counts by rule and
        action)."""

    def batch_done(self) -> None:
        """Deferred observers: every event of the batch just delivered has been handed over (write out what was
        gathered from it in one go). Never called on immediate observers."""

    def take_batch(self, batch: EventBatch) -> None:
        """Deferred observers may override this to take each batch whole: a list per kind of event (`batch.done`,
        `batch.attempts`, ...), of the kinds whose methods the observer overrides (the others' lists may hold events
        too: skip them). Summing a list with `sum(map(...))` and the like runs without bytecode per event; the
        built-in usage and metrics observers do that. Not overridden (the default), each event goes to its method
        instead, in the order the events happened. `batch_done` is called after either."""


class AuthRequest:
    """What an authenticator sees of one request: never the body. `remote_addr` (the client's address, after any
    forwarding headers Sanic is configured to trust) may be given as a function, then worked out on first use: the
    header parsing behind it cost more than a key check, which never needs it."""

    __slots__ = ("_remote_addr", "headers", "method", "path")

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],  # case-insensitive: look names up in lower case
        remote_addr: str | Callable[[], str],
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self._remote_addr = remote_addr

    @property
    def remote_addr(self) -> str:
        address = self._remote_addr
        if not isinstance(address, str):
            address = self._remote_addr = address()
        return address

    def __repr__(self) -> str:
        return f"AuthRequest(method={self.method!r}, path={self.path!r})"


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


class Later(Enum):
    """`Authenticator.authenticate_now`'s answer when it has to wait: ask `authenticate`."""

    LATER = "later"


LATER = Later.LATER


class Authenticator(ABC):
    """Decides who is calling a /v1/* endpoint. Registered authenticators are asked in order; the first Principal
    wins. When none answers with one, the request gets 401 authentication_error."""

    @abstractmethod
    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """The caller, or None when this authenticator does not recognise the request. Raise a
        `ccproxy.ProxyError` to refuse with a status of your own (e.g. 429 over budget)."""

    def authenticate_now(self, request: AuthRequest) -> Principal | Later | None:
        """Optional: the answer `authenticate` would give, when it can be given without waiting (a lookup in a
        table), else LATER (the default), and then `authenticate` is awaited. Saves a coroutine per request."""
        return LATER
