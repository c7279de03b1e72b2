"""Every hook ccproxy calls, with the markers plugins use. Hooks run at start-up (or server start/stop), never per
request: they register objects, and those objects do the per-request work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from ccproxy.events import GuardrailEvent
from ccproxy.interfaces import (
    Authenticator,
    CacheBackend,
    Guardrail,
    Observer,
    Provider,
    ReasoningConfigurator,
    StreamContext,
    StreamFilter,
)

if TYPE_CHECKING:
    from sanic import Request
    from sanic.response import HTTPResponse

    from ccproxy.state import AppState

PROJECT_NAME = "ccproxy"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: `register(provider_class)` — a `Provider` subclass with a unique `name`.
RegisterProvider = Callable[[type[Provider]], None]
#: `register(name, factory)` — `factory(options)` builds the backend from its `[plugins.<name>]` table.
RegisterCacheBackend = Callable[[str, Callable[[Mapping[str, Any]], CacheBackend]], None]
#: `register(name, factory)` — `factory(options)` builds the configurator from the `[reasoning]` table.
ReasoningFactory = Callable[[Mapping[str, Any]], ReasoningConfigurator]
RegisterReasoningConfigurator = Callable[[str, ReasoningFactory], None]
#: `register(guardrail)` — a `Guardrail` instance, appended to the chain in plugin order.
RegisterGuardrail = Callable[[Guardrail], None]
#: `audit(event)` — report what a guardrail or stream filter did: logged, and handed to every observer.
ReportGuardrailEvent = Callable[[GuardrailEvent], None]
#: `register(factory)` — `factory(context)` returns the filter for one streamed answer, or None to stay out of it.
StreamFilterFactory = Callable[[StreamContext], StreamFilter | None]
RegisterStreamFilter = Callable[[StreamFilterFactory], None]
#: `register(observer)` — an `Observer` instance.
RegisterObserver = Callable[[Observer], None]
#: `register(authenticator)` — an `Authenticator` instance, asked after those registered before it.
RegisterAuthenticator = Callable[[Authenticator], None]
#: An async Sanic handler: `await handler(request) -> HTTPResponse`.
RouteHandler = Callable[["Request"], Coroutine[Any, Any, "HTTPResponse"]]


class RegisterRoute(Protocol):
    """`register(path, handler, methods=("GET",), name=None)`."""

    def __call__(
        self, path: str, handler: RouteHandler, methods: Sequence[str] = ("GET",), name: str | None = None
    ) -> None: ...


@hookspec
def ccproxy_register_providers(register: RegisterProvider) -> None:
    """Register upstream provider classes.

    Called once when the app is built. Call `register(ProviderClass)` for each provider the plugin ships; the class is
    instantiated once per backend whose `[backends.<name>]` table says `provider = "<name>"` (the legacy `default`
    backend: `[ccproxy] provider`, default "openai"). Two plugins registering the same name stop start-up. Returns
    nothing.
    """


@hookspec
def ccproxy_register_cache_backends(register: RegisterCacheBackend) -> None:
    """Register cache backend factories.

    Called once when the app is built. Call `register("name", factory)`; `factory(options)` receives the
    `[plugins.<name>]` table (secrets resolved) with the `[cache]` table's `url` (REDIS_URL), `key_prefix` and `ttl`
    (as `default_ttl`) filled in where it does not set them, and returns a `CacheBackend` (a ValueError stops
    start-up with its message). The backend named by CACHE_BACKEND (`cache = "<name>"`) is built once per server
    process; its `open()` runs at server start on the server's loop, its `shared_states()` may give the stores for
    the upstream stack's breakers and limiters. Two plugins registering the same name stop start-up. Returns
    nothing.
    """


@hookspec
def ccproxy_register_reasoning_configurators(register: RegisterReasoningConfigurator) -> None:
    """Register named reasoning configurators: what turns Anthropic `thinking` / `output_config.effort` into upstream
    request fields.

    Called once when the app is built. Call `register("name", factory)`; `factory(options)` receives the
    `[reasoning]` table of plugins.toml (without `configurator`) and returns a `ReasoningConfigurator`, built once per
    name. A backend uses the one its table names (`reasoning = "<name>"`), else `[reasoning] configurator`, else its
    provider's `default_reasoning`, else `"budget-effort"` (the built-in). Two plugins registering the same name stop
    start-up. Returns nothing.
    """


@hookspec
def ccproxy_register_guardrails(
    register: RegisterGuardrail, options: Mapping[str, Any], audit: ReportGuardrailEvent
) -> None:
    """Register guardrails, checked in order on every request before conversion.

    Called once when the app is built. `options` is the `[guardrails]` table of plugins.toml. The chain is empty by
    default; a guardrail refuses a request by raising `ccproxy.ProxyError`. `audit(GuardrailEvent(...))` reports a
    refusal or a change (logged at INFO and handed to every observer). Returns nothing.
    """


@hookspec
def ccproxy_register_stream_filters(
    register: RegisterStreamFilter, options: Mapping[str, Any], audit: ReportGuardrailEvent
) -> None:
    """Register stream filter factories: the stage where streamed answers can be inspected or rewritten.

    Called once when the app is built. `options` is the `[guardrails]` table of plugins.toml (response guardrails
    are what filters are for). Call `register(factory)`; for every streamed answer each factory is called with a
    `StreamContext` and returns a fresh `StreamFilter` for that stream, or None to stay out of it. Filters run in
    registration order; when every factory returns None the stream takes the unfiltered fast path. `audit` as for
    `ccproxy_register_guardrails`. Returns nothing.
    """


@hookspec
def ccproxy_register_observers(register: RegisterObserver) -> None:
    """Register observers: objects told about every finished request, upstream attempt and cache event.

    Called once when the app is built. Call `register(observer)` with an `Observer` instance; its methods are called
    synchronously on the event loop and must not block. With no observer registered no record is built at all.
    Returns nothing.
    """


@hookspec
def ccproxy_register_authenticators(register: RegisterAuthenticator) -> None:
    """Register authenticators for the `/v1/*` endpoints.

    Called once when the app is built. Call `register(authenticator)` with an `Authenticator` instance. When at least
    one is registered, every `/v1/*` request is shown (as an `AuthRequest`) to each in order until one returns a
    `Principal`; without one the answer is 401 `authentication_error`. `GET /` and `HEAD /` (health) stay open. The
    Principal is available to handlers as `request.ctx.principal`. Returns nothing.
    """


@hookspec
def ccproxy_register_routes(register: RegisterRoute) -> None:
    """Register extra HTTP endpoints (metrics, admin, cache endpoints, ...).

    Called once when the app is built. Call `register(path, handler, methods=("GET",), name=None)`; `handler` is an
    async Sanic handler `(request) -> HTTPResponse`. A path and method that a built-in endpoint or another plugin
    already serves stops start-up. Routes under `/v1/` pass the authenticators like every `/v1/*` request; others
    are open. Errors raised as `ccproxy.ProxyError` become Anthropic error bodies. Returns nothing.
    """


@hookspec
def ccproxy_startup(state: AppState) -> Awaitable[None] | None:
    """Server start, in each worker process, after the upstream connections are opened.

    Called once per server process, on the server's event loop, in plugin order; may be a coroutine function
    (awaited before the next plugin's). `state` is the app state (`app.ctx`: settings, pipeline, cache, ...). Open
    loop-bound resources (connection pools, background tasks) here. Raising stops the server. Returns nothing.
    """


@hookspec
def ccproxy_shutdown(state: AppState) -> Awaitable[None] | None:
    """Server stop, in each worker process, before the upstream connections and the cache are closed.

    Called once per server process, in plugin order; may be a coroutine function (awaited). `state` is the same app
    state `ccproxy_startup` received. Close what startup opened. An exception is logged and the next plugin's
    shutdown still runs. Returns nothing.
    """
