"""Which backends and models serve a requested model: `backend:model` direct, [routes] globs, then default routes."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Any

from ccproxy.backends import public_url
from ccproxy.config import BackendConfig, SettingsError, dotted
from ccproxy.errors import InvalidRequestError, NotFoundError

DEFAULT_BACKEND = "default"
# Clients choose model names, so the memo of resolved names is bounded.
MEMO_LIMIT = 4096
# Shown by GET /v1/models: the Claude model names clients pick from, with the chain each is routed to.
KNOWN_CLAUDE_MODELS = (
    "claude-opus-4-8",
    "claude-sonnet-5",
    "claude-opus-4-5",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-3-5-haiku-latest",
)
LISTING_CREATED_AT = "2025-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class Target:
    """One model on one backend."""

    backend: str
    model: str

    def __str__(self) -> str:
        return f"{self.backend}:{self.model}"


@dataclass(frozen=True, slots=True)
class Route:
    """The targets tried in order for a requested model; `pattern` is the glob that matched (None: direct)."""

    targets: tuple[Target, ...]
    pattern: str | None = None


def parse_target(text: str, backends: Collection[str], where: str) -> Target:
    """`backend:model` when the part before the first `:` is a configured backend, else a model on `default`.

    Ollama-style names (`qwen3:8b`) keep their colon. A bare model with no `default` backend is a SettingsError.
    """
    prefix, colon, model = text.partition(":")
    if colon and prefix in backends:
        if not model:
            raise SettingsError(f"{where}: {text!r} names backend {prefix!r} but no model")
        return Target(prefix, model)
    if DEFAULT_BACKEND not in backends:
        configured = ", ".join(sorted(backends)) or "none"
        raise SettingsError(
            f'{where}: {text!r} is not "backend:model" for a configured backend ({configured}) and there is no '
            f"{DEFAULT_BACKEND!r} backend to serve it as a model name"
        )
    return Target(DEFAULT_BACKEND, text)


def parse_routes(table: Mapping[str, str | Sequence[str]], backends: Collection[str]) -> tuple[Route, ...]:
    """The `[routes]` table (pattern -> a target or a list of them, file order) as Routes; errors name the route."""
    routes = []
    for pattern, value in table.items():
        where = dotted(("routes", pattern))
        targets = (value,) if isinstance(value, str) else value
        routes.append(Route(tuple(parse_target(text, backends, where) for text in targets), pattern))
    return tuple(routes)


class Router:
    """Resolves a requested model name to a Route. Per request: a dict lookup once a name has been seen."""

    def __init__(self, routes: Sequence[Route], default_routes: Sequence[Route], backends: Collection[str]) -> None:
        self.routes = tuple(routes)
        self.default_routes = tuple(default_routes)
        self.backends = frozenset(backends)
        for route in self.routes + self.default_routes:
            for target in route.targets:
                if target.backend not in self.backends:
                    raise SettingsError(f"{dotted(('routes', route.pattern or ''))}: no backend {target.backend!r}")
        # Globs are case-insensitive: patterns lower-cased and compiled once, names lower-cased per new name.
        self._globs = tuple(
            (re.compile(translate(route.pattern.lower())), route)
            for route in self.routes + self.default_routes
            if route.pattern is not None
        )
        self._memo: dict[str, Route] = {}

    def resolve(self, requested_model: str) -> Route:
        """The route for `requested_model`; 400 for `x,y` with an unknown backend x, 404 when nothing matches."""
        route = self._memo.get(requested_model)
        if route is None:
            route = self._resolve(requested_model)
            if len(self._memo) < MEMO_LIMIT:
                self._memo[requested_model] = route
        return route

    def _resolve(self, requested: str) -> Route:
        direct = self._direct(requested)
        if direct is not None:
            return direct
        lowered = requested.lower()
        for glob, route in self._globs:
            if glob.match(lowered):
                return route
        patterns = ", ".join(repr(route.pattern) for route in self.routes) or "none"
        raise NotFoundError(
            f"model {requested!r} has no route; routes: {patterns}; "
            f'or ask for "backend:model" with a configured backend ({self._configured()})'
        )

    def _direct(self, requested: str) -> Route | None:
        """`backend,model` (an unknown backend is the client's mistake) or `backend:model` (only when it is one)."""
        prefix, comma, model = requested.partition(",")
        if comma:
            if prefix not in self.backends:
                raise InvalidRequestError(
                    f"model {requested!r}: {prefix!r} is not a configured backend; configured: {self._configured()}"
                )
        else:
            prefix, colon, model = requested.partition(":")
            if not colon or prefix not in self.backends:
                return None
        if not model:
            raise InvalidRequestError(f"model {requested!r}: no model after the backend name {prefix!r}")
        return Route((Target(prefix, model),))

    def _configured(self) -> str:
        return ", ".join(sorted(self.backends)) or "none"


def models_listing(
    router: Router,
    backends: Mapping[str, BackendConfig],
    *,
    backend_models: Mapping[str, Iterable[str]] | None = None,
    known_models: Sequence[str] = KNOWN_CLAUDE_MODELS,
) -> dict[str, Any]:
    """GET /v1/models: Anthropic's list shape, plus a `ccproxy` object with the routes and backends.

    `data` holds the known Claude names that have a route (their chain in display_name), then each backend's own
    models as `backend:model` ids from `backend_models` (what the providers could list).
    """
    data = []
    for name in known_models:
        try:
            chain = " -> ".join(str(target) for target in router.resolve(name).targets)
        except NotFoundError:
            continue
        data.append(_model_entry(name, f"{name} (via {chain})"))
    for backend, models in (backend_models or {}).items():
        data.extend(_model_entry(f"{backend}:{model}", f"{model} ({backend})") for model in models)
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "ccproxy": {
            "routes": [
                {"pattern": route.pattern, "targets": [str(target) for target in route.targets]}
                for route in router.routes + router.default_routes
            ],
            "backends": {name: _backend_entry(config) for name, config in backends.items()},
        },
    }


def _backend_entry(config: BackendConfig) -> dict[str, Any]:
    return {"provider": config.provider, "base_url": public_url(config.base_url) if config.base_url else None}


def _model_entry(model_id: str, display_name: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": display_name, "created_at": LISTING_CREATED_AT}
