"""ccproxy: the Anthropic Messages API in front of any OpenAI-compatible Chat Completions backend.

The public face for plugins: base classes, the hook markers, errors and wire types.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ccproxy.core.plan import ModelCapabilities
from ccproxy.errors import InvalidRequestError, ProxyError, UpstreamError
from ccproxy.hookspecs import hookimpl
from ccproxy.interfaces import (
    BasicCredentials,
    CacheBackend,
    Guardrail,
    GuardrailContext,
    Provider,
    ProviderConfig,
    ReasoningConfigurator,
    ReasoningRequest,
)

__all__ = [
    "BasicCredentials",
    "CacheBackend",
    "Guardrail",
    "GuardrailContext",
    "InvalidRequestError",
    "ModelCapabilities",
    "Provider",
    "ProviderConfig",
    "ProxyError",
    "ReasoningConfigurator",
    "ReasoningRequest",
    "UpstreamError",
    "__version__",
    "hookimpl",
]
