"""create_app(settings): the only place things are wired together. No business logic here."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from sanic import Sanic
from sanic.config import Config

from ccproxy import __version__
from ccproxy.core import implementation_name
from ccproxy.http.edge import EdgePolicy, add_cors_headers, check_request
from ccproxy.http.errors import install_error_handlers
from ccproxy.http.handlers import api
from ccproxy.interfaces import CacheBackend, ProviderConfig
from ccproxy.pipeline import MessagesPipeline
from ccproxy.plugins import build_plugin_manager, collect, select_cache, select_provider
from ccproxy.redaction import RedactingFilter, Redactor
from ccproxy.routing import ModelRouter
from ccproxy.settings import Settings, SettingsError, load_settings, upstream_auth
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


CCProxyApp = Sanic[Config, AppState]


def create_app(settings: Settings | object | None = None) -> CCProxyApp:
    """Build the app: state from `build_state`, routes, error handlers and lifecycle hooks.

    `sanic ccproxy.app:create_app --factory` passes its own CLI arguments here; settings then come from the
    environment, .env and plugins.toml like everywhere else.
    """
    if not isinstance(settings, Settings):
        settings = load_settings()
    # Here, so every worker process logs too: first with the configured keys (plugins log while they load), then
    # with every secret the provider holds.
    configure_logging(
        settings.log_level, Redactor([settings.api_key, settings.options_for(settings.provider).get("api_key")])
    )
    state = build_state(settings)
    configure_logging(settings.log_level, state.redact)
    app: CCProxyApp = Sanic("ccproxy", config=server_config(), ctx=state)
    app.blueprint(api)
    app.register_middleware(check_request, "request")
    if settings.allowed_origins:  # otherwise every Origin is refused and no answer needs CORS headers
        app.register_middleware(add_cors_headers, "response")
    install_error_handlers(app)
    app.before_server_start(_open_resources)
    app.after_server_stop(_close_resources)
    return app


def build_state(settings: Settings) -> AppState:
    """Plugin manager, provider, cache and pipeline; raises SettingsError for anything misconfigured."""
    pm = build_plugin_manager(settings)
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
    if registry.reasoning is None:
        raise SettingsError("reasoning: no reasoning configurator is registered (ccproxy.reasoning disabled?)")
    cache = select_cache(registry, settings.cache)(settings.options_for(settings.cache))
    transport = Transport(
        provider.chat_completions_url(),
        provider.headers(),
        request_timeout=settings.request_timeout,
        connect_timeout=settings.connect_timeout,
    )
    redact = Redactor([*provider.secrets(), settings.api_key])
    router = ModelRouter(settings)
    pipeline = MessagesPipeline(
        provider=provider,
        transport=transport,
        router=router,
        reasoning=registry.reasoning,
        guardrails=registry.guardrails,
        load_tokens=TokenCounter.load,
        cache=cache,
        redact=redact,
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
    )


def configure_logging(level: str, redact: Redactor) -> None:
    """The `ccproxy` loggers write to stderr at LOG_LEVEL through one handler whose filter redacts every record."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redact))
    logger = logging.getLogger("ccproxy")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


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
    await app.ctx.transport.open()
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
    await app.ctx.transport.close()
    await app.ctx.cache.close()
