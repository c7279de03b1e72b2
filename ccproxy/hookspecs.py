"""Every hook ccproxy calls, with the markers plugins use. Hooks run once at start-up, never per request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from ccproxy.interfaces import CacheBackend, Guardrail, Provider, ReasoningConfigurator

PROJECT_NAME = "ccproxy"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: `register(provider_class)` — a `Provider` subclass with a unique `name`.
RegisterProvider = Callable[[type[Provider]], None]
#: `register(name, factory)` — `factory(options)` builds the backend from its `[plugins.<name>]` table.
RegisterCacheBackend = Callable[[str, Callable[[Mapping[str, Any]], CacheBackend]], None]
#: `register(guardrail)` — a `Guardrail` instance, appended to the chain in plugin order.
RegisterGuardrail = Callable[[Guardrail], None]


@hookspec
def ccproxy_register_providers(register: RegisterProvider) -> None:
    """Register upstream provider classes.

    Called once when the app is built. Call `register(ProviderClass)` for each provider the plugin ships; the class is
    instantiated once, only if `provider = "<name>"` in plugins.toml selects it. Returns nothing.
    """


@hookspec
def ccproxy_register_cache_backends(register: RegisterCacheBackend) -> None:
    """Register cache backend factories.

    Called once when the app is built. Call `register("name", factory)`; `factory(options)` receives the
    `[plugins.<name>]` table (secrets resolved) and returns a `CacheBackend`. The backend named by
    `cache = "<name>"` in plugins.toml is built once per server process. Returns nothing.
    """


@hookspec(firstresult=True)
def ccproxy_reasoning_configurator(options: Mapping[str, Any]) -> ReasoningConfigurator | None:
    """Return the object that turns Anthropic thinking settings into upstream reasoning fields.

    Called once when the app is built; the first non-None answer wins, so a plugin overrides the built-in
    default (registered `trylast`). `options` is the `[reasoning]` table of plugins.toml.
    """


@hookspec
def ccproxy_register_guardrails(register: RegisterGuardrail, options: Mapping[str, Any]) -> None:
    """Register guardrails, checked in order on every request before conversion.

    Called once when the app is built. `options` is the `[guardrails]` table of plugins.toml. The chain is empty by
    default; a guardrail refuses a request by raising `ccproxy.errors.ProxyError`. Returns nothing.
    """
