"""build_plugin_manager(settings): built-in defaults first, then entry points, blocked names, check_pending; and
collect(): every registration hook called once, plugin by plugin, into one Registry."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pluggy

from ccproxy import hookspecs
from ccproxy.default_plugins import DEFAULT_PLUGINS, plugin_object
from ccproxy.hookspecs import ReasoningFactory, RouteHandler, StreamFilterFactory
from ccproxy.interfaces import Authenticator, CacheBackend, Guardrail, Observer, Provider
from ccproxy.observers import GuardrailAudit
from ccproxy.settings import Settings, SettingsError

log = logging.getLogger("ccproxy.plugins")

CacheFactory = Callable[[Mapping[str, Any]], CacheBackend]
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
T = TypeVar("T")


def build_plugin_manager(
    settings: Settings, *, load_entry_points: bool = True, plugins: Sequence[tuple[str, object]] = ()
) -> pluggy.PluginManager:
    """A fresh manager: defaults, then the `ccproxy` entry-point group, then `plugins` given in code (an embedding
    app's, or a test's), minus disabled names.

    A hook implementation whose name matches no spec (a misspelled hook) makes start-up fail.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in settings.disabled_plugins:
        pm.set_blocked(name)
    for name, module in DEFAULT_PLUGINS:
        if not pm.is_blocked(name):
            pm.register(plugin_object(module, settings), name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
    for name, plugin in plugins:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise SettingsError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from None
    if log.isEnabledFor(logging.DEBUG):
        log.debug("plugins: %s", ", ".join(sorted(n for n, _ in pm.list_name_plugin() if n)))
    return pm


def plugin_callers(pm: pluggy.PluginManager, hook_name: str) -> Iterator[tuple[str, pluggy.HookCaller]]:
    """(plugin name, a caller of `hook_name` for that plugin alone), in the order pluggy calls them.

    Calling plugin by plugin tells who registered what (duplicates name both plugins) and lets lifecycle hooks be
    awaited one after the other.
    """
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    plugins = [impl.plugin for impl in impls]
    for impl in reversed(impls):  # pluggy calls the last registered (and tryfirst) first
        others = [plugin for plugin in plugins if plugin is not impl.plugin]
        yield impl.plugin_name, pm.subset_hook_caller(hook_name, remove_plugins=others)


@dataclass(frozen=True, slots=True)
class PluginRoute:
    """An extra endpoint a plugin registered."""

    path: str
    handler: RouteHandler
    methods: tuple[str, ...]
    name: str  # unique among routes: the plugin's name and the route's
    plugin: str


@dataclass(slots=True)
class Registry:
    """What the plugins registered, collected once at start-up."""

    providers: dict[str, type[Provider]] = field(default_factory=dict)
    cache_backends: dict[str, CacheFactory] = field(default_factory=dict)
    reasoning_configurators: dict[str, ReasoningFactory] = field(default_factory=dict)
    guardrails: list[Guardrail] = field(default_factory=list)
    stream_filters: list[StreamFilterFactory] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)
    authenticators: list[Authenticator] = field(default_factory=list)
    routes: list[PluginRoute] = field(default_factory=list)
    #: plugin name -> kind ("providers", "routes", ...) -> labels of what it registered, for `ccproxy plugins`.
    registered: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def label(obj: object) -> str:
    """How a registered object is named in listings: its `name`, else its class or function name."""
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    qualname = getattr(obj, "__qualname__", None)  # classes and functions have one, instances do not
    return qualname if isinstance(qualname, str) else type(obj).__qualname__


class _Collector:
    """Calls one registration hook plugin by plugin, recording which plugin registered each name."""

    def __init__(self, pm: pluggy.PluginManager, registry: Registry) -> None:
        self.pm = pm
        self.registry = registry
        self.plugin = ""
        self.owners: dict[tuple[str, str], str] = {}

    def call(self, hook_name: str, **kwargs: Any) -> None:
        for plugin, caller in plugin_callers(self.pm, hook_name):
            self.plugin = plugin
            caller(**kwargs)

    def note(self, kind: str, name: str) -> None:
        self.registry.registered.setdefault(self.plugin, {}).setdefault(kind, []).append(name)

    def claim(self, kind: str, name: str, what: str) -> None:
        """Record `name` as this plugin's; a name two plugins register is a start-up error naming both."""
        owner = self.owners.setdefault((kind, name), self.plugin)
        if owner != self.plugin:
            raise SettingsError(f"{what} {name!r} is registered by two plugins: {owner!r} and {self.plugin!r}")
        if name in self.registry.registered.get(self.plugin, {}).get(kind, ()):
            raise SettingsError(f"{what} {name!r} is registered twice by plugin {owner!r}")
        self.note(kind, name)

    def named(self, kind: str, table: dict[str, T], what: str) -> Callable[[str, T], None]:
        def register(name: str, value: T) -> None:
            self.claim(kind, name, what)
            table[name] = value

        return register

    def listed(self, kind: str, items: list[T]) -> Callable[[T], None]:
        def register(item: T) -> None:
            self.note(kind, label(item))
            items.append(item)

        return register

    def register_provider(self, provider: type[Provider]) -> None:
        self.claim("providers", provider.name, "provider")
        self.registry.providers[provider.name] = provider

    def register_route(
        self, path: str, handler: RouteHandler, methods: Sequence[str] = ("GET",), name: str | None = None
    ) -> None:
        route = plugin_route(self.plugin, path, handler, methods, name)
        for method in route.methods:
            self.claim("routes", f"{method} {route.path}", "route")
        if ("route names", route.name) in self.owners:
            raise SettingsError(f"plugin {self.plugin!r}: route {route.path}: the name {route.name!r} is taken")
        self.owners[("route names", route.name)] = self.plugin
        self.registry.routes.append(route)


def plugin_route(
    plugin: str, path: str, handler: RouteHandler, methods: Sequence[str], name: str | None
) -> PluginRoute:
    """A checked PluginRoute: an absolute path, known methods, a callable handler, a name unique for Sanic."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise SettingsError(f"plugin {plugin!r}: route path {path!r} must start with '/'")
    upper = tuple(dict.fromkeys(str(method).upper() for method in methods))
    if not upper or not set(upper) <= HTTP_METHODS:
        raise SettingsError(f"plugin {plugin!r}: route {path}: unknown HTTP method in {list(methods)!r}")
    if not callable(handler):
        raise SettingsError(f"plugin {plugin!r}: route {path}: the handler is not callable")
    # Sanic wants unique route names: the plugin's name and the given one, else the handler, methods and path.
    implicit = f"{getattr(handler, '__name__', 'route')}_{'_'.join(upper)}_{path}"
    unique = re.sub(r"\W", "_", f"plugin_{plugin}_{name or implicit}")
    return PluginRoute(path=path, handler=handler, methods=upper, name=unique, plugin=plugin)


def collect(pm: pluggy.PluginManager, settings: Settings) -> Registry:
    """Call every registration hook once per implementing plugin and return what was registered."""
    registry = Registry()
    collector = _Collector(pm, registry)
    audit = GuardrailAudit(registry.observers)  # observers are registered below; the audit reads the list later
    collector.call("ccproxy_register_providers", register=collector.register_provider)
    collector.call(
        "ccproxy_register_cache_backends",
        register=collector.named("cache_backends", registry.cache_backends, "cache backend"),
    )
    collector.call(
        "ccproxy_register_reasoning_configurators",
        register=collector.named("reasoning_configurators", registry.reasoning_configurators, "reasoning configurator"),
    )
    collector.call(
        "ccproxy_register_guardrails",
        register=collector.listed("guardrails", registry.guardrails),
        options=settings.guardrail_options,
        audit=audit,
    )
    collector.call(
        "ccproxy_register_stream_filters",
        register=collector.listed("stream_filters", registry.stream_filters),
        options=settings.guardrail_options,
        audit=audit,
    )
    collector.call("ccproxy_register_observers", register=collector.listed("observers", registry.observers))
    collector.call(
        "ccproxy_register_authenticators", register=collector.listed("authenticators", registry.authenticators)
    )
    collector.call("ccproxy_register_routes", register=collector.register_route)
    return registry


def _installed(found: Mapping[str, T], name: str, setting: str, what: str, hint: str = "") -> T:
    try:
        return found[name]
    except KeyError:
        installed = ", ".join(sorted(found)) or "none"
        raise SettingsError(f"{setting}: {name!r} is not installed{hint}; installed {what}: {installed}") from None


def select_cache(registry: Registry, name: str) -> CacheFactory:
    return _installed(registry.cache_backends, name, "cache", "backends")


def build_cache(registry: Registry, settings: Settings) -> CacheBackend:
    """The cache backend `settings.cache`, built from its `[plugins.<name>]` table with the [cache] table's `url`
    (REDIS_URL), `key_prefix` and `ttl` (as `default_ttl`) filled in where that table does not set them. A backend
    refusing its options (ValueError) stops start-up with its message."""
    factory = select_cache(registry, settings.cache)
    common = settings.cache_options
    given = {"url": common.url, "key_prefix": common.key_prefix, "default_ttl": common.ttl}
    options = {key: value for key, value in given.items() if value is not None} | dict(
        settings.options_for(settings.cache)
    )
    try:
        return factory(options)
    except SettingsError:
        raise
    except ValueError as exc:
        raise SettingsError(f"cache {settings.cache!r}: {exc}") from None
