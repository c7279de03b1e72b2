"""The OpenRouter provider plugin: provider `openrouter` and its reasoning configurator `openrouter`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ccproxy import Provider, ReasoningConfigurator, hookimpl
from ccproxy_openrouter.provider import (
    DEFAULT_BASE_URL,
    MaxPrice,
    OpenRouterOptions,
    OpenRouterProvider,
    ProviderPreferences,
    openrouter_capabilities,
)
from ccproxy_openrouter.reasoning import OpenRouterReasoning

__all__ = [
    "DEFAULT_BASE_URL",
    "MaxPrice",
    "OpenRouterOptions",
    "OpenRouterProvider",
    "OpenRouterReasoning",
    "ProviderPreferences",
    "openrouter_capabilities",
]


@hookimpl
def ccproxy_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenRouterProvider)


@hookimpl
def ccproxy_register_reasoning_configurators(
    register: Callable[[str, Callable[[Mapping[str, Any]], ReasoningConfigurator]], None],
) -> None:
    register(OpenRouterReasoning.name, OpenRouterReasoning)
