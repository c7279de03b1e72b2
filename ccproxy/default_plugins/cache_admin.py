"""Built-in cache endpoints (admin): GET /v1/cache/stats and POST /v1/cache/clear; and the cache warm-up's start and
stop (ccproxy/warmup.py)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sanic import Request
from sanic.response import HTTPResponse, json

from ccproxy.hookspecs import RegisterRoute, hookimpl
from ccproxy.http.admin import require_admin
from ccproxy.http.errors import request_id_of
from ccproxy.settings import Settings
from ccproxy.tasks import stop_task
from ccproxy.warmup import load_entries, save_popular

if TYPE_CHECKING:
    from ccproxy.config import WarmupConfig
    from ccproxy.response_cache import ResponseCache
    from ccproxy.state import AppState, CCProxyApp

log = logging.getLogger("ccproxy.warmup")
# The backend's counters shown at the top of the stats (all of them are under "store").
SUMMARY = ("entries", "hits", "misses", "evictions", "bytes")


async def cache_stats(request: Request) -> HTTPResponse:
    """GET /v1/cache/stats: the cache backend's counters and health, and this process's response-cache counts."""
    require_admin(request)
    state = cast("CCProxyApp", request.app).ctx
    store = await state.cache.stats()
    responses = state.pipeline.responses
    body: dict[str, Any] = {
        "backend": state.cache.name,
        "healthy": bool(store.get("healthy", True)),
        **{name: store.get(name) for name in SUMMARY},
        "store": store,
        "responses": responses.stats() if responses is not None else {"enabled": False},
        "pid": os.getpid(),
    }
    return json(body, headers={"request-id": request_id_of(request)})


async def cache_clear(request: Request) -> HTTPResponse:
    """POST /v1/cache/clear: every cache entry (answers and token counts) removed; limiter and breaker state stay."""
    require_admin(request)
    state = cast("CCProxyApp", request.app).ctx
    removed = await state.cache.clear()
    if state.pipeline.responses is not None:
        state.pipeline.responses.popular.clear()
    return json({"backend": state.cache.name, "cleared": removed}, headers={"request-id": request_id_of(request)})


class CacheAdmin:
    """The endpoints, and the warm-up of one server process: loaded at start, saved periodically and at stop."""

    def __init__(self, settings: Settings) -> None:
        self.warmup: WarmupConfig = settings.cache_options.warmup
        self.path = Path(self.warmup.file_path)
        self._saver: asyncio.Task[None] | None = None

    @hookimpl
    def ccproxy_register_routes(self, register: RegisterRoute) -> None:
        register("/v1/cache/stats", cache_stats, methods=("GET",), name="cache_stats")
        register("/v1/cache/clear", cache_clear, methods=("POST",), name="cache_clear")

    @hookimpl
    async def ccproxy_startup(self, state: AppState) -> None:
        responses = state.pipeline.responses
        if not self.warmup.enabled:
            return
        if responses is None:
            log.warning("CACHE_WARMUP_ENABLED is set but the response cache is off (RESPONSE_CACHE=on): no warm-up")
            return
        if self.warmup.on_startup:
            await load_entries(responses, self.path, max_items=self.warmup.max_items)
        if self.warmup.auto_save_popular:
            self._saver = asyncio.get_running_loop().create_task(self._save_every(responses), name="ccproxy-warmup")

    @hookimpl
    async def ccproxy_shutdown(self, state: AppState) -> None:
        saver, self._saver = self._saver, None
        if saver is None:
            return
        await stop_task(saver)
        responses = state.pipeline.responses
        if responses is not None:
            await self._save(responses)

    async def _save_every(self, responses: ResponseCache) -> None:
        while True:
            await asyncio.sleep(self.warmup.save_interval_seconds)
            await self._save(responses)

    async def _save(self, responses: ResponseCache) -> None:
        warmup = self.warmup
        try:
            saved = await save_popular(
                responses, self.path, threshold=warmup.popularity_threshold, max_items=warmup.max_items
            )
        except OSError as exc:
            log.warning("cache warm-up: cannot write %s (%s)", self.path, exc)
            return
        if saved:
            log.info("cache warm-up: %d popular answer(s) saved to %s", saved, self.path)


def plugin_for(settings: Settings) -> CacheAdmin:
    return CacheAdmin(settings)
