"""Hands each record to every registered observer; an observer that raises is logged, never the request's failure."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccproxy.events import CacheEvent, RequestRecord, UpstreamAttempt
from ccproxy.interfaces import Observer

if TYPE_CHECKING:
    from ccproxy.upstream import AttemptObserver, UpstreamFailure, UpstreamRequest

log = logging.getLogger("ccproxy.observers")


class Observers:
    """The registered observers as one. Only built when at least one is registered, so callers test for None."""

    __slots__ = ("observers",)

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)

    def request_done(self, record: RequestRecord) -> None:
        self._notify("request_done", record)

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        self._notify("upstream_attempt", attempt)

    def cache_event(self, event: CacheEvent) -> None:
        self._notify("cache_event", event)

    def _notify(self, method: str, record: RequestRecord | UpstreamAttempt | CacheEvent) -> None:
        for observer in self.observers:
            try:
                getattr(observer, method)(record)
            except Exception:
                log.exception("observer %s failed in %s", type(observer).__name__, method)


def observers_or_none(observers: Sequence[Observer]) -> Observers | None:
    """None when nothing is registered: per-request code then skips building records altogether."""
    return Observers(observers) if observers else None


@dataclass(frozen=True, slots=True)
class AttemptTag:
    """What the pipeline hangs on an UpstreamRequest (`tag`) when observers listen: whose attempt it is."""

    record: RequestRecord
    backend: str
    model: str


def attempt_reporter(observers: Observers, redact: Callable[[str], str]) -> AttemptObserver:
    """The `on_attempt` of every backend's stack (ObservedUpstream) when observers are registered: each attempt that
    reached a backend becomes an UpstreamAttempt record (its error text redacted: observers send it elsewhere), and
    retries are counted on the request's record."""

    def on_attempt(request: UpstreamRequest, status: int | None, error: UpstreamFailure | None, seconds: float) -> None:
        tag = request.tag
        if not isinstance(tag, AttemptTag):  # a call that is not a client's request (listing models)
            return
        if request.attempt:
            tag.record.retries += 1
        observers.upstream_attempt(
            UpstreamAttempt(
                request_id=tag.record.request_id,
                backend=tag.backend,
                upstream_model=tag.model,
                attempt=request.attempt + 1,
                status=status,
                error=None if error is None else redact(error.message),
                ms=seconds * 1000,
            )
        )

    return on_attempt
