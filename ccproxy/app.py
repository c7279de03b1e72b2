"""create_app(settings): the only place things are wired together. No business logic here."""

from __future__ import annotations

import inspect
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pluggy
from sanic import Sanic
from sanic.config import Config

from ccproxy import __version__
from ccproxy.core import implementation_name
from ccproxy.filters import stream_filters_or_none
from ccproxy.http.auth import install_authentication
from ccproxy.http.edge import EdgePolicy, add_cors_headers, check_request
from ccproxy.http.errors import install_error_handlers
from ccproxy.http.handlers import api
from ccproxy.http.plugin_routes import install_plugin_routes
from ccproxy.interfaces import CacheBackend, ProviderConfig
from ccproxy.keys import refuse_open_bind
from ccproxy.logs import configure_logging, flush_logs
from ccproxy.observers import Observers, observers_or_none
from ccproxy.pipeline import MessagesPipeline
from ccproxy.plugins import (
    Registry,
    build_plugin_manager,
    collect,
    plugin_callers,
    select_cache,
    select_provider,
    select_reasoning,
)
from ccproxy.redaction import Redactor
from ccproxy.routing import ModelRouter
from ccproxy.settings import Settings, SettingsError, load_settings, upstream_auth
from ccproxy.shutdown import defer_shutdown_signals
from ccproxy.tokens import TokenCounter
from ccproxy.transport import Transport
from sanic_config import server_config

log = logging.getLogger("ccproxy")

# Shown by GET /v1/models: the Claude model names clients pick from, with what they are routed to.
KNOWN_CLAUDE_MODELS = (
    "claude-opus-4-8",
    "claude-sonnet-5",
    "claude-opus-4-5",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-3-5-haiku-latest",
)


@dataclass(slots=True)
class AppState:
    """`app.ctx`: objects built by the factory; loop-bound ones are filled in before the server starts."""

    settings: Settings
    pipeline: MessagesPipeline
    transport: Transport
    cache: CacheBackend
    redact: Redactor
    health: dict[str, Any]
    models: dict[str, Any]
    edge: EdgePolicy
    plugins: pluggy.PluginManager
    registry: Registry
    observers: Observers | None  # None when no observer is registered: handlers then build no records


CCProxyApp = Sanic[Config, AppState]


def create_app(settings: Settings | object | None = None, *, plugins: Sequence[tuple[str, object]] = ()) -> CCProxyApp:
    """Build the app: state from `build_state`, routes, error handlers and lifecycle hooks.

    `sanic ccproxy.app:create_app --factory` passes its own CLI arguments here; settings then come from the
    environment, .env and plugins.toml like everywhere else. `plugins` are (name, plugin) pairs registered after the
    entry points (for embedding apps and tests).
    """
    if not isinstance(settings, Settings):
        settings = load_settings()
    # Here, so every worker process logs too: first with the configured keys (plugins log while they load), then
    # with every secret the provider holds (after Sanic configured its own loggers, which JSON lines take over).
    configure_logging(settings, Redactor(configured_secrets(settings)))
    state = build_state(settings, plugins=plugins)
    refuse_open_bind(settings.host, settings, state.registry.authenticators)
    app: CCProxyApp = Sanic("ccproxy", config=server_config(), ctx=state)
    configure_logging(settings, state.redact)
    app.blueprint(api)
    app.register_middleware(check_request, "request")
    if settings.allowed_origins:  # otherwise every Origin is refused and no answer needs CORS headers
        app.register_middleware(add_cors_headers, "response")
    install_plugin_routes(app, state.registry.routes)
    if state.registry.authenticators:
        install_authentication(app, state.registry.authenticators)
    install_error_handlers(app)
    app.main_process_ready(defer_shutdown_signals)  # only ever fires in the multi-worker main process
    app.before_server_start(_open_resources)
    app.after_server_stop(_close_resources)
    return app


def build_state(settings: Settings, *, plugins: Sequence[tuple[str, object]] = ()) -> AppState:
    """Plugin manager, provider, cache and pipeline; raises SettingsError for anything misconfigured."""
    pm = build_plugin_manager(settings, plugins=plugins)
    registry = collect(pm, settings)
    provider_class = select_provider(registry, settings.provider)
    options = settings.options_for(settings.provider)
    api_key = options.get("api_key", settings.api_key)
    where = f"plugins.{settings.provider}.base_url" if "base_url" in options else "OPENAI_BASE_URL"
    base_url, basic_auth = upstream_auth(str(options.get("base_url", settings.base_url)), api_key, where)
    config = ProviderConfig(
        base_url=base_url,
        api_key=api_key,
        options=options,
        request_timeout=settings.request_timeout,
        connect_timeout=settings.connect_timeout,
        basic_auth=basic_auth,
    )
    try:
        provider = provider_class(config)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"plugins.{settings.provider}: {exc}") from None
    reasoning = select_reasoning(registry, settings.reasoning_options)
    cache = select_cache(registry, settings.cache)(settings.options_for(settings.cache))
    transport = Transport(
        provider.chat_completions_url(),
        provider.headers(),
        request_timeout=settings.request_timeout,
        connect_timeout=settings.connect_timeout,
    )
    redact = Redactor([*provider.secrets(), *configured_secrets(settings)])
    router = ModelRouter(settings)
    pipeline = MessagesPipeline(
        provider=provider,
        transport=transport,
        router=router,
        reasoning=reasoning,
        guardrails=registry.guardrails,
        load_tokens=TokenCounter.load,
        cache=cache,
        redact=redact,
        stream_filters=stream_filters_or_none(registry.stream_filters),
    )
    return AppState(
        settings=settings,
        pipeline=pipeline,
        transport=transport,
        cache=cache,
        redact=redact,
        health={
            "status": "ok",
            "version": __version__,
            "core": implementation_name(),
            "provider": provider.name,
        },
        models=_models_listing(router),
        edge=EdgePolicy.from_settings(settings, socket.gethostname()),
        plugins=pm,
        registry=registry,
        observers=observers_or_none(registry.observers),
    )


def configured_secrets(settings: Settings) -> list[str | None]:
    """The upstream key and the client and admin keys: redacted from every log line and error body."""
    auth_keys = settings.auth_options.get("keys")
    tables = auth_keys if isinstance(auth_keys, list) else []
    client_keys = [entry.get("key") for entry in tables if isinstance(entry, dict)]
    return [
        settings.api_key,
        settings.options_for(settings.provider).get("api_key"),
        *settings.api_keys,
        settings.admin_key,
        settings.auth_options.get("admin_key"),
        *client_keys,
    ]


def _models_listing(router: ModelRouter) -> dict[str, Any]:
    data = [
        {
            "type": "model",
            "id": name,
            "display_name": f"{name} (via {router.resolve(name)})",
            "created_at": "2025-01-01T00:00:00Z",
        }
        for name in KNOWN_CLAUDE_MODELS
    ]
    return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}


async def _open_resources(app: CCProxyApp) -> None:
    # The bind address Sanic really uses (`sanic ... --host` never reaches Settings): refused like in create_app.
    refuse_open_bind(app.state.host or app.ctx.settings.host, app.ctx.settings, app.ctx.registry.authenticators)
    await app.ctx.transport.open()
    await run_lifecycle_hook(app.ctx, "ccproxy_startup")
    log.info(
        "ccproxy %s: provider %s, %s core, upstream %s",
        __version__,
        app.ctx.health["provider"],
        app.ctx.health["core"],
        app.ctx.transport.url,
    )
    for name, hint in app.ctx.settings.ignored_settings:
        log.warning("%s is set but not honoured: %s", name, hint)


async def _close_resources(app: CCProxyApp) -> None:
    await run_lifecycle_hook(app.ctx, "ccproxy_shutdown", keep_going=True)
    await app.ctx.transport.close()
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
