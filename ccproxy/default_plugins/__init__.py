"""Built-in behaviour written as plugins against the same hooks third parties use."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from ccproxy.default_plugins import (
    cache_admin,
    client_keys,
    guardrails,
    memory_cache,
    metrics,
    null_cache,
    reasoning,
    usage,
)

if TYPE_CHECKING:
    from ccproxy.settings import Settings

# (name, module) in registration order; a name can be disabled in plugins.toml like any plugin.
DEFAULT_PLUGINS: tuple[tuple[str, ModuleType], ...] = (
    ("ccproxy.memory_cache", memory_cache),
    ("ccproxy.reasoning", reasoning),
    ("ccproxy.guardrails", guardrails),
    ("ccproxy.client_keys", client_keys),
    ("ccproxy.usage", usage),
    ("ccproxy.metrics", metrics),
    ("ccproxy.null_cache", null_cache),
    ("ccproxy.cache_admin", cache_admin),
)


def plugin_object(module: ModuleType, settings: Settings) -> object:
    """What to register for a built-in: the module itself, or the object its `plugin_for(settings)` builds (the
    built-ins configured by settings: keys, prices, the metrics directory)."""
    factory = getattr(module, "plugin_for", None)
    return module if factory is None else factory(settings)
