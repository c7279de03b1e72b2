"""AppState (the app's `ctx`) and the typed app and request: what handlers import instead of ccproxy.app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sanic import Request, Sanic
from sanic.config import Config

from ccproxy.shutdown import Drain

if TYPE_CHECKING:  # only names for annotations: importing them here would bring the cycle back
    import pluggy

    from ccproxy.backends import Backend
    from ccproxy.catalog import ModelCatalog
    from ccproxy.http.admission import RequestGate
    from ccproxy.http.edge import EdgePolicy
    from ccproxy.interfaces import CacheBackend
    from ccproxy.memory import HeapTrimmer
    from ccproxy.observers import Observers
    from ccproxy.pipeline import MessagesPipeline
    from ccproxy.plugins import Registry
    from ccproxy.redaction import Redactor
    from ccproxy.routing import Router
    from ccproxy.settings import Settings
    from ccproxy.upstream import UpstreamStates


@dataclass(slots=True)
class AppState:
    """`app.ctx`: objects built by the factory (ccproxy/app.py); each backend's upstream opens when the server
    starts and closes when it stops."""

    settings: Settings
    pipeline: MessagesPipeline
    backends: Mapping[str, Backend]
    router: Router
    upstream_states: UpstreamStates  # breakers and limiters of every backend, keyed by its name
    catalog: ModelCatalog  # GET /v1/models
    cache: CacheBackend
    redact: Redactor
    health: dict[str, Any]
    edge: EdgePolicy
    plugins: pluggy.PluginManager
    registry: Registry
    observers: Observers | None  # None when no observer is registered: handlers then build no records
    gate: RequestGate | None = None  # MAX_CONCURRENT_REQUESTS (None: no cap); made on the server's loop
    trimmer: HeapTrimmer | None = None  # heap trims after big requests; made when the server starts
    started_at: float = 0.0  # time.monotonic() when this process started serving (GET /v1/status)
    drain: Drain = field(default_factory=Drain)  # the running streams, ended when shutdown's grace runs out


CCProxyApp = Sanic[Config, AppState]
# What handlers and middleware take: `request.app.ctx` is an AppState, with no cast.
CCProxyRequest = Request[CCProxyApp, SimpleNamespace]
