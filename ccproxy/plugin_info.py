"""What `ccproxy plugins` shows: each plugin, its distribution and version, its hooks and what it registered."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from ccproxy import __version__
from ccproxy.default_plugins import DEFAULT_PLUGINS
from ccproxy.plugins import Registry

# Registry kinds in the order they are shown, with their human-readable names.
KINDS: tuple[tuple[str, str], ...] = (
    ("providers", "providers"),
    ("cache_backends", "cache backends"),
    ("reasoning_configurators", "reasoning configurators"),
    ("guardrails", "guardrails"),
    ("stream_filters", "stream filters"),
    ("observers", "observers"),
    ("authenticators", "authenticators"),
    ("routes", "routes"),
)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    builtin: bool
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    registered: Mapping[str, tuple[str, ...]]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "builtin": self.builtin,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
            "registered": {kind: list(names) for kind, names in self.registered.items()},
        }


def own_distribution() -> tuple[str, str]:
    """The distribution ccproxy itself (and so every built-in plugin) comes from, with its version."""
    names = importlib.metadata.packages_distributions().get("ccproxy") or []
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover — stale metadata
            continue
    return "ccproxy-server", __version__  # pragma: no cover — run from a source tree that is not installed


def describe_plugins(pm: pluggy.PluginManager, registry: Registry) -> list[PluginInfo]:
    """Every registered plugin in registration order: built-ins first, then entry points."""
    entry_points = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    builtins = {name for name, _ in DEFAULT_PLUGINS}
    own = own_distribution()
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked: listed separately as disabled
            continue
        dist = entry_points.get(id(plugin))
        if dist is not None:
            distribution, version = str(dist.project_name), str(dist.version)
        elif name in builtins:
            distribution, version = own
        else:  # registered in code (tests, embedding apps)
            distribution, version = None, None
        registered = registry.registered.get(name, {})
        infos.append(
            PluginInfo(
                name=name,
                builtin=name in builtins,
                distribution=distribution,
                version=version,
                hooks=tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())),
                registered={kind: tuple(registered[kind]) for kind, _ in KINDS if kind in registered},
            )
        )
    return infos


def render_text(infos: list[PluginInfo], disabled: tuple[str, ...]) -> str:
    lines = []
    for info in infos:
        origin = "built-in" if info.builtin else "entry point" if info.distribution else "registered in code"
        dist = f", {info.distribution} {info.version}" if info.distribution else ""
        lines.append(f"{info.name} ({origin}{dist})")
        lines.append(f"  hooks: {', '.join(info.hooks) or 'none'}")
        for kind, title in KINDS:
            if kind in info.registered:
                lines.append(f"  {title}: {', '.join(info.registered[kind])}")
    if disabled:
        lines.append(f"disabled: {', '.join(disabled)}")
    return "\n".join(lines)


def render_json(infos: list[PluginInfo], disabled: tuple[str, ...]) -> dict[str, Any]:
    return {"plugins": [info.as_json() for info in infos], "disabled": list(disabled)}
