"""Hands each record to every registered observer; an observer that raises is logged, never the request's failure.
Guardrail actions also pass through here (GuardrailAudit): logged at INFO, then handed to the observers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccproxy.events import BreakerChange, CacheEvent, GuardrailEvent, LimiterWait, RequestRecord, UpstreamAttempt
from ccproxy.interfaces import Observer

if TYPE_CHECKING:
    from ccproxy.upstream import (
        AttemptObserver,
        BreakerObserver,
        CircuitState,
        LimiterObserver,
        UpstreamFailure,
        UpstreamRequest,
    )

log = logging.getLogger("ccproxy.observers")
audit_log = logging.getLogger("ccproxy.audit")

Record = RequestRecord | UpstreamAttempt | CacheEvent | GuardrailEvent | BreakerChange | LimiterWait


def notify(observers: Sequence[Observer], method: str, record: Record) -> None:
    """Call `method(record)` on each observer; one that raises is logged and the others are still called."""
    for observer in observers:
        try:
            getattr(observer, method)(record)
        except Exception:
            log.exception("observer %s failed in %s", type(observer).__name__, method)


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
            for method in (
                "request_started",
                "request_done",
                "upstream_attempt",
                "cache_event",
                "breaker_change",
                "limiter_wait",
            )
        }

    def request_started(self, record: RequestRecord) -> None:
        self._notify("request_started", record)

    def request_done(self, record: RequestRecord) -> None:
        self._notify("request_done", record)

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        self._notify("upstream_attempt", attempt)

    def cache_event(self, event: CacheEvent) -> None:
        self._notify("cache_event", event)

    def breaker_change(self, event: BreakerChange) -> None:
        self._notify("breaker_change", event)

    def limiter_wait(self, event: LimiterWait) -> None:
        self._notify("limiter_wait", event)

    def _notify(self, method: str, record: Record) -> None:
        for call in self._calls[method]:
            try:
                call(record)
            except Exception:
                log.exception("observer %s failed in %s", type(call.__self__).__name__, method)  # type: ignore[attr-defined]  # bound methods


def observers_or_none(observers: Sequence[Observer]) -> Observers | None:
    """None when nothing is registered: per-request code then skips building records altogether."""
    return Observers(observers) if observers else None


class GuardrailAudit:
    """What guardrails and stream filters report their actions through (the `audit` argument of their hooks):
    each event is logged at INFO on `ccproxy.audit` and handed to every observer's `guardrail_event`.

    `observers` is the registry's list itself: guardrails are registered before observers, so it fills up later.
    """

    __slots__ = ("observers",)

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = observers

    def __call__(self, event: GuardrailEvent) -> None:
        if audit_log.isEnabledFor(logging.INFO):
            labels = f" ({', '.join(event.labels)})" if event.labels else ""
            detail = f": {event.detail}" if event.detail else ""
            audit_log.info(
                "%s guardrail %r %s on the %s, count %d%s%s",
                event.request_id,
                event.rule,
                event.action,
                event.direction,
                event.count,
                labels,
                detail,
            )
        notify(self.observers, "guardrail_event", event)


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


def breaker_reporter(observers: Observers) -> BreakerObserver:
    """The `on_state` of every backend's circuit breaker when observers are registered."""

    def on_state(backend: str, state: CircuitState) -> None:
        observers.breaker_change(BreakerChange(backend, state))

    return on_state


def limiter_reporter(observers: Observers) -> LimiterObserver:
    """The `on_wait` of every backend's rate limiter when observers are registered."""

    def on_wait(backend: str, seconds: float) -> None:
        observers.limiter_wait(LimiterWait(backend, seconds))

    return on_wait
