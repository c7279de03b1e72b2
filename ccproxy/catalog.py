"""GET /v1/models: the routes and backends, plus each backend's own models where its provider can list them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ccproxy.backends import Backend
from ccproxy.routing import Router, models_listing
from ccproxy.upstream import Clock, UpstreamFailure

log = logging.getLogger("ccproxy.catalog")

# A backend's list is asked for again after this long; a failed or timed-out listing sooner.
LIST_TTL = 300.0
FAILED_LIST_TTL = 60.0
# No listing holds up GET /v1/models longer than this; a slow one counts as failed.
LIST_TIMEOUT = 10.0


class ModelCatalog:
    """The listing of GET /v1/models (ccproxy/routing.py `models_listing`), with the backends' own models.

    `Provider.list_models(upstream)` is asked once per LIST_TTL per backend, through the backend's bare transport
    (no retries, no breaker: a listing must not open the circuit of a backend that serves requests). A provider that
    cannot list answers None; one that fails is logged and asked again after FAILED_LIST_TTL — never fatal.
    """

    def __init__(
        self,
        router: Router,
        backends: Mapping[str, Backend],
        *,
        ttl: float = LIST_TTL,
        failed_ttl: float = FAILED_LIST_TTL,
        timeout: float = LIST_TIMEOUT,
        clock: Clock = time.monotonic,
    ) -> None:
        self.router = router
        self.backends = backends
        self.ttl = ttl
        self.failed_ttl = failed_ttl
        self.timeout = timeout
        self.clock = clock
        self._lists: dict[str, tuple[float, tuple[str, ...]]] = {}  # backend -> (good until, models)
        self._lock = asyncio.Lock()
        self._configs = {name: backend.config for name, backend in backends.items()}

    async def listing(self) -> dict[str, Any]:
        """The whole GET /v1/models answer."""
        await self._refresh()
        listed = {name: models for name, (_, models) in self._lists.items() if models}
        return models_listing(self.router, self._configs, backend_models=listed)

    async def _refresh(self) -> None:
        now = self.clock()
        if all(self._lists.get(name, (0.0, ()))[0] > now for name in self.backends):
            return
        async with self._lock:  # one listing at a time, however many clients ask meanwhile
            now = self.clock()
            due = [backend for name, backend in self.backends.items() if self._lists.get(name, (0.0, ()))[0] <= now]
            if not due:
                return
            results = await asyncio.gather(*(self._list(backend) for backend in due))
            now = self.clock()
            for backend, models in zip(due, results, strict=True):
                ttl = self.failed_ttl if models is None else self.ttl
                self._lists[backend.name] = (now + ttl, tuple(models or ()))

    async def _list(self, backend: Backend) -> Sequence[str] | None:
        """The backend's models; () when its provider cannot list them, None when listing failed."""
        if backend.transport is None:
            return ()
        try:
            async with asyncio.timeout(self.timeout):
                models = await backend.provider.list_models(backend.transport)
        except UpstreamFailure as exc:
            log.warning("backend %s: listing its models failed: %s", backend.name, exc.message)
            return None
        except TimeoutError:
            log.warning("backend %s: listing its models failed: no answer within %.0f s", backend.name, self.timeout)
            return None
        except Exception:  # a provider's bug (or an answer it did not expect) must not fail GET /v1/models
            log.exception("backend %s: listing its models failed", backend.name)
            return None
        return () if models is None else [str(model) for model in models]
