"""create_app(settings): the only place things are wired together. No business logic here."""

from __future__ import annotations

import gc
import inspect
import logging
import socket
import sys
import time
from collections.abc import Sequence

from sanic import Sanic

from ccproxy import __version__
from ccproxy.backends import build_backends, public_url
from ccproxy.catalog import ModelCatalog
from ccproxy.core import CompiledCoreError, implementation_name
from ccproxy.filters import stream_filters_or_none
from ccproxy.http.admission import RequestGate
from ccproxy.http.auth import install_edge
from ccproxy.http.edge import EdgePolicy, add_cors_headers
from ccproxy.http.errors import install_error_handlers
from ccproxy.http.handlers import api
from ccproxy.http.plugin_routes import install_plugin_routes
from ccproxy.http.probes import install_probes
from ccproxy.http.protocol import use_deadline_protocol
from ccproxy.keys import refuse_open_bind
from ccproxy.logs import configure_logging, flush_logs
from ccproxy.memory import HeapTrimmer, heap_trim, return_big_buffers
from ccproxy.observers import attempt_reporter, breaker_reporter, limiter_reporter, observers_or_none
from ccproxy.pipeline import Limits, MessagesPipeline
from ccproxy.plugins import build_cache, build_plugin_manager, collect, plugin_callers
from ccproxy.redaction import Redactor
from ccproxy.response_cache import response_cache_or_none
from ccproxy.routing import Router, parse_routes
from ccproxy.settings import Settings, SettingsError, backend_plan, load_settings
from ccproxy.shutdown import (
    defer_shutdown_signals,
    share_stop_flag,
    stop_if_requested,
)
from ccproxy.state import AppState, CCProxyApp
from ccproxy.tokens import TokenCounter
from ccproxy.upstream import UpstreamStates
from sanic_config import server_config

__all__ = ["AppState", "CCProxyApp", "build_state", "configure_logging", "create_app", "run_lifecycle_hook"]

log = logging.getLogger("ccproxy")
EXIT_CONFIG_ERROR = 2  # what `ccproxy serve` exits with for a bad setting (ccproxy/cli.py)
SHUTDOWN_MARGIN = 2.0  # seconds after SHUTDOWN_GRACE for the streams' error events to go out


def create_app(settings: Settings | object | None = None, *, plugins: Sequence[tuple[str, object]] = ()) -> CCProxyApp:
    """Build the app: state from `build_state`, routes, error handlers and lifecycle hooks.

    `sanic ccproxy.app:create_app --factory` passes its own CLI arguments here; settings then come from the
    environment, .env and plugins.toml like everywhere else. `plugins` are (name, plugin) pairs registered after the
    entry points (for embedding apps and tests).
    """
    if not isinstance(settings, Settings):
        if settings is not None:  # `sanic ... --factory` passed its arguments: a bad setting must stop it
            return _create_or_exit(settings, plugins)
        settings = load_settings()
    # Here, so every worker process logs too: first with the configured keys (plugins log while they load), then
    # with every secret the backends' providers hold (after Sanic configured its own loggers, which JSON lines take
    # over).
    configure_logging(settings, Redactor(configured_secrets(settings)))
    state = build_state(settings, plugins=plugins)
    refuse_open_bind(settings.host, settings, state.registry.authenticators)
    app: CCProxyApp = Sanic("ccproxy", config=server_config(), ctx=state)
    app.config.REQUEST_MAX_SIZE = settings.max_request_body_bytes
    # Sanic aborts the connections still open this long after shutdown began: the grace, then time for the streams'
    # last error events (ccproxy/shutdown.py).
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.shutdown_grace + SHUTDOWN_MARGIN
    configure_logging(settings, state.redact)
    app.blueprint(api)
    install_probes(app)
    install_edge(app, state.registry.authenticators)
    if settings.allowed_origins:  # otherwise every Origin is refused and no answer needs CORS headers
        app.register_middleware(add_cors_headers, "response")
    install_plugin_routes(app, state.registry.routes)
    install_error_handlers(app)
    # Only ever fire in the multi-worker main process.
    app.main_process_start(share_stop_flag)
    app.main_process_start(use_deadline_protocol)
    app.main_process_ready(defer_shutdown_signals)
    app.after_server_start(stop_if_requested)
    app.before_server_start(_open_resources)
    app.before_server_stop(_begin_shutdown)
    app.after_server_stop(_close_resources)
    return app


def _create_or_exit(cli_args: object, plugins: Sequence[tuple[str, object]]) -> CCProxyApp:
    """create_app under Sanic's CLI: a start-up problem is one line and exit code 2, like `ccproxy serve`. Sanic's
    CLI logs a ValueError (SettingsError is one) with its traceback and then exits 0, which no supervisor notices.
    Its `--host` is checked here too, in the main process, rather than in a worker that Sanic's manager kills."""
    try:
        settings = load_settings()
        app = create_app(settings, plugins=plugins)
        host = getattr(cli_args, "host", None)
        if isinstance(host, str) and host:
            refuse_open_bind(host, settings, app.ctx.registry.authenticators)
        return app
    except SettingsError as exc:
        print(f"ccproxy: configuration error: {exc}", file=sys.stderr, flush=True)
    except CompiledCoreError as exc:
        print(f"ccproxy: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG_ERROR)


def build_state(settings: Settings, *, plugins: Sequence[tuple[str, object]] = ()) -> AppState:
    """Plugin manager, backends and their upstreams, router, cache and pipeline; raises SettingsError for anything
    misconfigured."""
    pm = build_plugin_manager(settings, plugins=plugins)
    registry = collect(pm, settings)
    plan = backend_plan(settings)
    reasoning_options = dict(settings.reasoning_options)
    reasoning_choice = reasoning_options.pop("configurator", None)
    backends = build_backends(
        plan.backends,
        registry.providers,
        registry.reasoning_configurators,
        reasoning_options=reasoning_options,
        env=settings.environ,
        reasoning_choice=None if reasoning_choice is None else str(reasoning_choice),
    )
    router = Router(parse_routes(dict(settings.routes), backends), plan.default_routes, backends)
    provider_secrets = [secret for backend in backends.values() for secret in backend.provider.secrets()]
    redact = Redactor([*provider_secrets, *configured_secrets(settings)])
    observers = observers_or_none(registry.observers)
    cache = build_cache(registry, settings)
    # A shared cache (Redis) also holds the breakers' and limiters' state, so the limits hold for the whole fleet.
    states = cache.shared_states() or UpstreamStates()
    on_attempt = None if observers is None else attempt_reporter(observers, redact)
    on_breaker = None if observers is None else breaker_reporter(observers)
    on_limiter_wait = None if observers is None else limiter_reporter(observers)
    for backend in backends.values():
        backend.connect(
            states,
            on_attempt,
            on_breaker=on_breaker,
            on_limiter_wait=on_limiter_wait,
            connection_wait=settings.overload_wait,
            max_body=settings.max_upstream_body_bytes,
        )
    pipeline = MessagesPipeline(
        backends=backends,
        router=router,
        guardrails=registry.guardrails,
        load_tokens=TokenCounter.load,
        cache=cache,
        redact=redact,
        stream_filters=stream_filters_or_none(registry.stream_filters),
        responses=response_cache_or_none(settings.cache_options, cache, observers),
        limits=Limits(upstream_body=settings.max_upstream_body_bytes, sse_line=settings.max_sse_line_bytes),
    )
    first = next(iter(backends.values()))
    return AppState(
        settings=settings,
        pipeline=pipeline,
        backends=backends,
        router=router,
        upstream_states=states,
        catalog=ModelCatalog(router, backends),
        cache=cache,
        redact=redact,
        health={
            "status": "ok",
            "version": __version__,
            "core": implementation_name(),
            "provider": backends["default"].config.provider if "default" in backends else first.config.provider,
            "backends": {name: backend.config.provider for name, backend in backends.items()},
        },
        edge=EdgePolicy.from_settings(settings, socket.gethostname()),
        plugins=pm,
        registry=registry,
        observers=observers,
    )


def configured_secrets(settings: Settings) -> list[str | None]:
    """The keys written in the settings — upstream keys of every backend, client and admin keys — before any provider
    is built: redacted from every log line (plugins log while they load) and error body."""
    auth_keys = settings.auth_options.get("keys")
    tables = auth_keys if isinstance(auth_keys, list) else []
    client_keys = [entry.get("key") for entry in tables if isinstance(entry, dict)]
    return [
        settings.api_key,
        settings.options_for(settings.provider).get("api_key"),
        *(table.api_key for table in settings.backend_tables.values()),
        *settings.api_keys,
        settings.admin_key,
        settings.auth_options.get("admin_key"),
        *client_keys,
    ]


async def _open_resources(app: CCProxyApp) -> None:
    # The bind address Sanic really uses (`sanic ... --host` never reaches Settings): refused like in create_app.
    refuse_open_bind(bound_host(app) or app.ctx.settings.host, app.ctx.settings, app.ctx.registry.authenticators)
    await app.ctx.cache.open()  # on the server's loop; never raises for an unreachable store
    backends = app.ctx.backends
    for backend in backends.values():
        if backend.upstream is not None:
            await backend.upstream.open()
    settings = app.ctx.settings
    # Made here, on the server's loop (a semaphore belongs to the loop it waits on); once (ASGI servers may run
    # start-up hooks more than once).
    if settings.max_concurrent_requests > 0 and app.ctx.gate is None:
        app.ctx.gate = RequestGate(settings.max_concurrent_requests, settings.overload_wait)
    app.ctx.started_at = app.ctx.started_at or time.monotonic()
    return_big_buffers()
    if app.ctx.trimmer is None:
        app.ctx.trimmer = HeapTrimmer(heap_trim())
    app.ctx.drain.reset()
    await run_lifecycle_hook(app.ctx, "ccproxy_startup")
    if not Sanic.test_mode:
        freeze_start_up_objects()
    log.info("ccproxy %s: %s core, %d backend(s)", __version__, app.ctx.health["core"], len(backends))
    for name, backend in backends.items():
        url = public_url(backend.provider.chat_completions_url())
        log.info("backend %s: provider %s, upstream %s", name, backend.config.provider, url)
    for name, hint in app.ctx.settings.ignored_settings:
        log.warning("%s is set but not honoured: %s", name, hint)


def freeze_start_up_objects() -> None:
    """Move every object made while starting (modules, the app, plugins, tables: ~65k of them) into the garbage
    collector's permanent generation. Each full collection would otherwise traverse them all again: 25-80 ms per
    collection on the machine measured, several a minute under load, ~17 µs per small request (benchmarks/README.md).
    They live as long as the process anyway. Not in test mode: a test process builds thousands of apps one after
    another, and frozen objects are never freed."""
    gc.freeze()


def bound_host(app: CCProxyApp) -> str | None:
    """The address this worker serves: Sanic's own, or (workers of a multi-process server, whose listening socket the
    main process made and passed on without a host) the address that socket is bound to."""
    if app.state.host:
        return app.state.host
    for info in app.state.server_info:
        sock = info.settings.get("sock")
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            return str(sock.getsockname()[0])
    return None


async def _begin_shutdown(app: CCProxyApp) -> None:
    app.ctx.drain.begin(app.ctx.settings.shutdown_grace)


async def _close_resources(app: CCProxyApp) -> None:
    if app.ctx.observers is not None:
        app.ctx.observers.flush()  # the deferred observers' last batch, before plugins close what they write to
    await run_lifecycle_hook(app.ctx, "ccproxy_shutdown", keep_going=True)
    for backend in app.ctx.backends.values():
        if backend.upstream is not None:
            await backend.upstream.aclose()
    if app.ctx.pipeline.responses is not None:
        await app.ctx.pipeline.responses.close()
    await app.ctx.cache.close()
    flush_logs()


async def run_lifecycle_hook(state: AppState, hook_name: str, *, keep_going: bool = False) -> None:
    """Call `hook_name(state=state)` plugin by plugin, awaiting each coroutine before the next plugin's call.

    With `keep_going` (shutdown) a failing plugin is logged and the others still run.
    """
    for plugin, caller in plugin_callers(state.plugins, hook_name):
        try:
            for result in caller(state=state):
                if inspect.isawaitable(result):
                    await result
        except Exception:
            if not keep_going:
                raise
            log.exception("plugin %r failed in %s", plugin, hook_name)
