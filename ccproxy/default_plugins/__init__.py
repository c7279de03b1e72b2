"""Built-in behaviour written as plugins against the same hooks third parties use."""

from __future__ import annotations

from types import ModuleType

from ccproxy.default_plugins import guardrails, memory_cache, reasoning

# (name, module) in registration order; a name can be disabled in plugins.toml like any plugin.
DEFAULT_PLUGINS: tuple[tuple[str, ModuleType], ...] = (
    ("ccproxy.memory_cache", memory_cache),
    ("ccproxy.reasoning", reasoning),
    ("ccproxy.guardrails", guardrails),
)
