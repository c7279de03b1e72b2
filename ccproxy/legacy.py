"""The five variables users know (OPENAI_API_KEY, ...) as backend `default` and the haiku/big default routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ccproxy.backends import key_required
from ccproxy.config import BackendConfig, CoreConfig, SettingsError, validate_table
from ccproxy.routing import DEFAULT_BACKEND, Route, Target

if TYPE_CHECKING:
    from ccproxy.settings import Settings

# The variables that define backend `default`, and their `[ccproxy]` spellings (by CoreConfig field).
LEGACY_ENV_VARS = ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "OPENAI_BASE_URL", "BIG_MODEL_NAME", "SMALL_MODEL_NAME")
LEGACY_CORE_FIELDS = ("api_key", "base_url", "big_model", "small_model")
SMALL_MODEL_PATTERN = "*haiku*"
LEGACY_RESILIENCE = {"retries": 0, "breaker_failures": 0}


@dataclass(frozen=True, slots=True)
class LegacyValues:
    """The pre-backends settings, as Settings resolved them (environment over .env over `[ccproxy]`)."""

    provider: str
    api_key: str | None = field(repr=False)
    base_url: str  # already defaulted: OPENAI_BASE_URL, else OpenRouter's with only OPENROUTER_API_KEY, else OpenAI's
    big_model: str
    small_model: str
    plugin_table: Mapping[str, Any] = field(repr=False)  # `[plugins.<provider>]`, secrets resolved
    configured: bool  # any of them set (see `legacy_configured`)


@dataclass(frozen=True, slots=True)
class BackendPlan:
    """The backends to build (file order; a legacy `default` first) and the routes tried after `[routes]`."""

    backends: Mapping[str, BackendConfig]
    default_routes: tuple[Route, ...]


def legacy_values(settings: Settings, *, configured: bool) -> LegacyValues:
    """The legacy values of a Settings (its provider's `[plugins.<provider>]` table included)."""
    return LegacyValues(
        provider=settings.provider,
        api_key=settings.api_key,
        base_url=settings.base_url,
        big_model=settings.big_model,
        small_model=settings.small_model,
        plugin_table=settings.options_for(settings.provider),
        configured=configured,
    )


def legacy_configured(env: Mapping[str, str], core: CoreConfig, plugin_table: Mapping[str, Any]) -> bool:
    """Whether the user set any legacy variable: in the environment / .env, in `[ccproxy]`, or a non-empty
    `[plugins.<provider>]` table (the old home of the provider's base_url, api_key, headers and models)."""
    if any(env.get(name) for name in LEGACY_ENV_VARS):
        return True
    return bool(set(core.model_fields_set) & set(LEGACY_CORE_FIELDS)) or bool(plugin_table)


def plan_backends(
    backends: Mapping[str, BackendConfig],
    legacy: LegacyValues,
    *,
    request_timeout: float,
    connect_timeout: float,
) -> BackendPlan:
    """The final backends and default routes.

    - No `[backends]` at all: today's behaviour — backend `default` from the legacy values (wanting OPENAI_API_KEY
      unless its host is local) and the default routes (`*haiku*` -> SMALL, everything else -> BIG).
    - `[backends]` and legacy values set: the same `default` (unless `[backends.default]` is written out, which wins)
      and the default routes, after the configured backends' routes.
    - `[backends]` and no legacy value: no `default`, no default routes, no key asked for.

    Timeouts a table leaves out take REQUEST_TIMEOUT / CONNECT_TIMEOUT.
    """
    planned: dict[str, BackendConfig] = {}
    wants_default = legacy.configured or not backends
    if makes_legacy_default(backends, legacy):
        planned[DEFAULT_BACKEND] = legacy_backend(legacy)
    planned.update(backends)
    for name, config in planned.items():
        planned[name] = config.replaced(
            request_timeout=config.request_timeout or request_timeout,
            connect_timeout=config.connect_timeout or connect_timeout,
        )
    default_routes = (
        (
            Route((Target(DEFAULT_BACKEND, legacy.small_model),), SMALL_MODEL_PATTERN),
            Route((Target(DEFAULT_BACKEND, legacy.big_model),), "*"),
        )
        if wants_default
        else ()
    )
    return BackendPlan(planned, default_routes)


def makes_legacy_default(backends: Mapping[str, BackendConfig], legacy: LegacyValues) -> bool:
    """Whether the legacy values make backend `default`: set, or nothing configured at all; and no
    `[backends.default]` written out."""
    return (legacy.configured or not backends) and DEFAULT_BACKEND not in backends


def legacy_backend(legacy: LegacyValues) -> BackendConfig:
    """Backend `default` as today: the provider's `[plugins.<provider>]` table over OPENAI_BASE_URL / the key.

    Errors are today's: `OPENAI_BASE_URL: expected an http(s) URL, ...`, `OPENAI_API_KEY: not set (or set
    OPENROUTER_API_KEY); it is required for <url>`.
    """
    parts = urlsplit(legacy.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"OPENAI_BASE_URL: expected an http(s) URL like https://api.openai.com/v1, got {legacy.base_url!r}"
        )
    table = f"plugins.{legacy.provider}"
    # No retries and no breaker unless the table asks: the legacy variables behave exactly as before backends (one
    # try; the Anthropic SDKs and Claude Code retry 429 and 5xx answers themselves).
    values = {"base_url": legacy.base_url, "api_key": legacy.api_key, **LEGACY_RESILIENCE, **legacy.plugin_table}
    values["provider"] = legacy.provider
    config = validate_table(BackendConfig, values, table).located(table, legacy=True)
    base_url = config.base_url or legacy.base_url
    # Today's rule, whatever the provider: a key unless the host is local (the provider is not known yet here).
    if not config.api_key and key_required(config, needs_key=True, base_url=base_url):
        raise SettingsError("OPENAI_API_KEY: not set (or set OPENROUTER_API_KEY); it is required for " + base_url)
    return config
