"""build_plugin_manager(settings): built-in defaults first, then entry points, blocked names, check_pending."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from ccproxy import hookspecs
from ccproxy.default_plugins import DEFAULT_PLUGINS
from ccproxy.interfaces import CacheBackend, Guardrail, Provider, ReasoningConfigurator
from ccproxy.settings import Settings, SettingsError

log = logging.getLogger("ccproxy.plugins")

CacheFactory = Callable[[Mapping[str, Any]], CacheBackend]


def build_plugin_manager(settings: Settings, *, load_entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager: defaults, then the `ccproxy` entry-point group, minus disabled names.

    A hook implementation whose name matches no spec (a misspelled hook) makes start-up fail.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in settings.disabled_plugins:
        pm.set_blocked(name)
    for name, module in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(module, name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise SettingsError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
    if log.isEnabledFor(logging.DEBUG):
        log.debug("plugins: %s", ", ".join(sorted(n for n, _ in pm.list_name_plugin() if n)))
    return pm


@dataclass(slots=True)
class Registry:
    """What the plugins registered, collected once at start-up."""

    providers: dict[str, type[Provider]] = field(default_factory=dict)
    cache_backends: dict[str, CacheFactory] = field(default_factory=dict)
    guardrails: list[Guardrail] = field(default_factory=list)
    reasoning: ReasoningConfigurator | None = None


def collect(pm: pluggy.PluginManager, settings: Settings) -> Registry:
    """Call every registration hook once and return what was registered."""
    registry = Registry()

    def register_provider(provider: type[Provider]) -> None:
        if provider.name in registry.providers:
            raise SettingsError(f"provider {provider.name!r} is registered by two plugins")
        registry.providers[provider.name] = provider

    def register_cache(name: str, factory: CacheFactory) -> None:
        registry.cache_backends[name] = factory

    pm.hook.ccproxy_register_providers(register=register_provider)
    pm.hook.ccproxy_register_cache_backends(register=register_cache)
    pm.hook.ccproxy_register_guardrails(register=registry.guardrails.append, options=settings.guardrail_options)
    registry.reasoning = pm.hook.ccproxy_reasoning_configurator(options=settings.reasoning_options)
    return registry


def select_provider(registry: Registry, name: str) -> type[Provider]:
    try:
        return registry.providers[name]
    except KeyError:
        installed = ", ".join(sorted(registry.providers)) or "none"
        hint = " (pip install ccproxy-openai)" if name == "openai" else ""
        raise SettingsError(f"provider: {name!r} is not installed{hint}; installed providers: {installed}") from None


def select_cache(registry: Registry, name: str) -> CacheFactory:
    try:
        return registry.cache_backends[name]
    except KeyError:
        installed = ", ".join(sorted(registry.cache_backends)) or "none"
        raise SettingsError(f"cache: {name!r} is not installed; installed backends: {installed}") from None
