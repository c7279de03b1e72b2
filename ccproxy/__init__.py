"""ccproxy: the Anthropic Messages API in front of any OpenAI-compatible Chat Completions backend.

The public face for plugins: base classes, observer records, the hook marker and errors.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ccproxy.core.plan import ModelCapabilities
from ccproxy.errors import InvalidRequestError, ProxyError, UpstreamError
from ccproxy.events import CacheEvent, RequestRecord, UpstreamAttempt
from ccproxy.hookspecs import hookimpl
from ccproxy.interfaces import (
    Authenticator,
    AuthRequest,
    BasicCredentials,
    CacheBackend,
    Guardrail,
    GuardrailContext,
    Observer,
    Principal,
    Provider,
    ProviderConfig,
    ReasoningConfigurator,
    ReasoningRequest,
    StreamContext,
    StreamFilter,
)

__all__ = [
    "AuthRequest",
    "Authenticator",
    "BasicCredentials",
    "CacheBackend",
    "CacheEvent",
    "Guardrail",
    "GuardrailContext",
    "InvalidRequestError",
    "ModelCapabilities",
    "Observer",
    "Principal",
    "Provider",
    "ProviderConfig",
    "ProxyError",
    "ReasoningConfigurator",
    "ReasoningRequest",
    "RequestRecord",
    "StreamContext",
    "StreamFilter",
    "UpstreamAttempt",
    "UpstreamError",
    "__version__",
    "hookimpl",
]
