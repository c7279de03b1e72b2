"""Endpoints plugins register, added to the app after the built-in ones; a clash is a start-up error."""

from __future__ import annotations

from collections.abc import Sequence

from sanic import Sanic
from sanic_routing.exceptions import RouteExists

from ccproxy.plugins import PluginRoute
from ccproxy.settings import SettingsError


def install_plugin_routes(app: Sanic, routes: Sequence[PluginRoute]) -> None:  # type: ignore[type-arg]  # any Sanic app
    """Add each route; one that a built-in endpoint already serves (same path and method) stops start-up."""
    for route in routes:
        try:
            app.add_route(route.handler, route.path, methods=list(route.methods), name=route.name)
        except RouteExists:
            raise SettingsError(
                f"plugin {route.plugin!r}: route {'/'.join(route.methods)} {route.path} is already served by ccproxy"
            ) from None
