"""ccproxy: the Anthropic Messages API in front of any OpenAI-compatible Chat Completions backend.

The public face for plugins: base classes, observer records, the hook marker and errors (`ccproxy.wire` adds what a
provider needs for an upstream API other than Chat Completions; it imports the conversion core, which this module
must not: a stale compiled core is reported by the CLI, after this package is imported).
`SettingsError` is what a plugin raises for bad options at start-up: `ccproxy serve` prints it as one line.
"""

from __future__ import annotations

# First, for what importing it does: in a Sanic server worker, the stop signals wait until the server is up.
from ccproxy import worker_signals as _worker_signals  # noqa: F401  # isort: split
from ccproxy.core.plan import ModelCapabilities
from ccproxy.errors import InvalidRequestError, ProxyError, UpstreamError
from ccproxy.events import BreakerChange, CacheEvent, GuardrailEvent, LimiterWait, RequestRecord, UpstreamAttempt
from ccproxy.hookspecs import hookimpl
from ccproxy.interfaces import (
    LATER,
    Authenticator,
    AuthRequest,
    BasicCredentials,
    CacheBackend,
    Guardrail,
    GuardrailContext,
    Later,
    Observer,
    Principal,
    Provider,
    ProviderConfig,
    ReasoningConfigurator,
    ReasoningRequest,
    StreamContext,
    StreamFilter,
)
from ccproxy.settings import SettingsError
from ccproxy.upstream import Upstream, UpstreamFailure, UpstreamRequest, UpstreamResponse

__version__ = "0.1.0"

__all__ = [
    "LATER",
    "AuthRequest",
    "Authenticator",
    "BasicCredentials",
    "BreakerChange",
    "CacheBackend",
    "CacheEvent",
    "Guardrail",
    "GuardrailContext",
    "GuardrailEvent",
    "InvalidRequestError",
    "Later",
    "LimiterWait",
    "ModelCapabilities",
    "Observer",
    "Principal",
    "Provider",
    "ProviderConfig",
    "ProxyError",
    "ReasoningConfigurator",
    "ReasoningRequest",
    "RequestRecord",
    "SettingsError",
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
