"""ccproxy: the Anthropic Messages API in front of any OpenAI-compatible Chat Completions backend.

The public face for plugins: base classes, observer records, the hook marker, errors and wire types.
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
from ccproxy.upstream import Upstream, UpstreamFailure, UpstreamRequest, UpstreamResponse

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
    "Upstream",
    "UpstreamAttempt",
    "UpstreamError",
    "UpstreamFailure",
    "UpstreamRequest",
    "UpstreamResponse",
    "__version__",
    "hookimpl",
]
