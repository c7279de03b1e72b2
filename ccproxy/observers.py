"""Hands each record to every registered observer; an observer that raises is logged, never the request's failure."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ccproxy.events import CacheEvent, RequestRecord, UpstreamAttempt
from ccproxy.interfaces import Observer

log = logging.getLogger("ccproxy.observers")


class Observers:
    """The registered observers as one. Only built when at least one is registered, so callers test for None.

    Each method calls only the observers that override it (bound methods collected once), so an observer that only
    counts finished requests costs nothing when a request starts.
    """

    __slots__ = ("_calls", "observers")

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)
        self._calls: dict[str, tuple[Callable[[Any], None], ...]] = {
            method: tuple(
                getattr(observer, method)
                for observer in self.observers
                if getattr(type(observer), method, None) is not getattr(Observer, method)
            )
            for method in ("request_started", "request_done", "upstream_attempt", "cache_event")
        }

    def request_started(self, record: RequestRecord) -> None:
        self._notify("request_started", record)

    def request_done(self, record: RequestRecord) -> None:
        self._notify("request_done", record)

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        self._notify("upstream_attempt", attempt)

    def cache_event(self, event: CacheEvent) -> None:
        self._notify("cache_event", event)

    def _notify(self, method: str, record: RequestRecord | UpstreamAttempt | CacheEvent) -> None:
        for call in self._calls[method]:
            try:
                call(record)
            except Exception:
                log.exception("observer %s failed in %s", type(call.__self__).__name__, method)  # type: ignore[attr-defined]  # bound methods


def observers_or_none(observers: Sequence[Observer]) -> Observers | None:
    """None when nothing is registered: per-request code then skips building records altogether."""
    return Observers(observers) if observers else None
