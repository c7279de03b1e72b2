"""Hands each record to every registered observer; an observer that raises is logged, never the request's failure.
Guardrail actions also pass through here (GuardrailAudit): logged at INFO, then handed to the observers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from ccproxy.batch_timer import BatchTimer
from ccproxy.events import (
    EVENT_METHODS,
    STARTED,
    BreakerChange,
    CacheEvent,
    EventBatch,
    GuardrailEvent,
    LimiterWait,
    RequestRecord,
    UpstreamAttempt,
)
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


# Deferred observers get their events at most this late, in one batch (see Observer.deferred) ...
DEFER_SECONDS = 0.02
# ... or as soon as this many of one kind wait: a bound on the memory held and on one batch's time on the loop.
MAX_DEFERRED = 1024
Call = Callable[[Any], None]


class Observers:
    """The registered observers as one. Only built when at least one is registered, so callers test for None.

    Each method calls only the observers that override it (bound methods collected once), so an observer that only
    counts finished requests costs nothing when a request starts. Observers that declare `deferred` are not called
    at once: the event is queued and every deferred observer goes through the queue in one batch, observer by
    observer, DEFER_SECONDS later (or at MAX_DEFERRED events of one kind, or on `flush()`). Run for a few hundred
    records in a row, their code stays in the CPU's caches; called once per request between the request's other
    work it cost about three times as much (benchmarks/README.md, stop 18). An observer that overrides
    `take_batch` gets the batch whole (EventBatch) and sums it without bytecode per event where it can (stop 21).
    """

    __slots__ = (
        "_deferred",
        "_ordered",
        "_queues",
        "_timer",
        "breaker_change",
        "cache_event",
        "limiter_wait",
        "observers",
        "request_done",
        "request_started",
        "upstream_attempt",
        "wants_started",
    )

    # One function per kind of event, made at start (_notifier): what the observers want of that kind and nothing
    # more (this runs twice per request: no lookups by kind, no call in between).
    request_started: Callable[[RequestRecord], None]
    request_done: Callable[[RequestRecord], None]
    upstream_attempt: Callable[[UpstreamAttempt], None]
    cache_event: Callable[[CacheEvent], None]
    breaker_change: Callable[[BreakerChange], None]
    limiter_wait: Callable[[LimiterWait], None]

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.observers = tuple(observers)
        # An observer that only fills in the record for the others (the built-in pricing) runs at the event only
        # when an immediate observer reads the finished record; else first in each batch.
        readers_now = any(
            not observer.deferred and not observer.fills_in_record and _override("request_done")(observer)
            for observer in self.observers
        )
        deferred = [
            observer
            for observer in self.observers
            if observer.deferred or (observer.fills_in_record and not readers_now)
        ]
        immediate = [observer for observer in self.observers if observer not in deferred]
        self._deferred = tuple(_Deferred.of(observer) for observer in deferred)
        # The queued events: a list per method index (an EventBatch's lists, copied out by flush), and, only when a
        # deferred observer takes them one by one, every event in the order they happened.
        self._queues: tuple[list[Any], ...] = tuple([] for _ in EVENT_METHODS)
        self._ordered: list[tuple[int, Record]] | None = (
            [] if any(entry.take_batch is None for entry in self._deferred) else None
        )
        self._timer = BatchTimer(DEFER_SECONDS, self.flush)
        for index, method in enumerate(EVENT_METHODS):
            now = tuple(call for call in map(_override(method), immediate) if call is not None)
            later = any(entry.calls[index] is not None for entry in self._deferred)
            setattr(self, method, self._notifier(index, now, later))
            if index == STARTED:
                #: Whether anyone listens to request_started (RequestWatch skips the call when no one does).
                self.wants_started = bool(now) or later

    def _notifier(self, index: int, now: tuple[Call, ...], later: bool) -> Call:
        """The function that hands an event of kind `index` to the immediate observers `now` and, when `later`,
        queues it for the deferred ones."""
        if not later:
            return partial(_call_each, now, EVENT_METHODS[index]) if now else _nobody
        queue, ordered, arm, flush = self._queues[index], self._ordered, self._timer.arm, self.flush
        if not now and ordered is None:  # the usual case: only queued (this runs for every event)

            def queue_only(record: Record) -> None:
                queue.append(record)
                if len(queue) >= MAX_DEFERRED or not arm():
                    flush()

            return queue_only

        def queue_event(record: Record) -> None:
            if now:
                _call_each(now, EVENT_METHODS[index], record)
            queue.append(record)
            if ordered is not None:
                ordered.append((index, record))
            if len(queue) >= MAX_DEFERRED or not arm():
                flush()

        return queue_event

    def flush(self) -> None:
        """Hand every queued event to the deferred observers now: before anything reads what they sum (/metrics,
        /v1/metrics, /v1/usage) and at shutdown."""
        queues = self._queues
        if not any(queues):
            return
        # Copied out and emptied in place: the notifiers hold these very lists.
        batch = EventBatch(*(queue.copy() for queue in queues))
        for queue in queues:
            queue.clear()
        ordered = self._ordered
        events = None
        if ordered is not None:
            events = ordered.copy()
            ordered.clear()
        for entry in self._deferred:
            if entry.take_batch is not None:
                try:
                    entry.take_batch(batch)
                except Exception:
                    _failed(entry.take_batch, "take_batch")
            elif events is not None:
                calls = entry.calls
                for index, record in events:
                    call = calls[index]
                    if call is not None:
                        try:
                            call(record)
                        except Exception:
                            _failed(call, EVENT_METHODS[index])
            if entry.batch_done is not None:
                try:
                    entry.batch_done()
                except Exception:
                    _failed(entry.batch_done, "batch_done")


def _call_each(calls: tuple[Call, ...], method: str, record: Record) -> None:
    for call in calls:
        try:
            call(record)
        except Exception:
            _failed(call, method)


def _nobody(record: Record) -> None:
    """The notifier of a kind of event no observer wants."""


@dataclass(frozen=True, slots=True)
class _Deferred:
    """What Observers keeps of one deferred observer: its overriding methods by index (None where it does not
    override one), its take_batch and its batch_done when it overrides them."""

    calls: tuple[Call | None, ...]
    take_batch: Callable[[EventBatch], None] | None
    batch_done: Callable[[], None] | None

    @classmethod
    def of(cls, observer: Observer) -> _Deferred:
        kind = type(observer)
        return cls(
            calls=tuple(_override(method)(observer) for method in EVENT_METHODS),
            take_batch=None if kind.take_batch is Observer.take_batch else observer.take_batch,
            batch_done=None if kind.batch_done is Observer.batch_done else observer.batch_done,
        )


def _override(method: str) -> Callable[[Observer], Call | None]:
    """The observer's bound `method` if its class overrides Observer's (which does nothing), else None."""

    def bound(observer: Observer) -> Call | None:
        if getattr(type(observer), method, None) is getattr(Observer, method):
            return None
        return cast(Call, getattr(observer, method))

    return bound


def _failed(call: Callable[..., None], method: str) -> None:
    owner = type(getattr(call, "__self__", call)).__name__
    log.exception("observer %s failed in %s", owner, method)


def flush_observers(request: Any) -> None:
    """Deliver what the app's observers hold (deferred ones) before an endpoint reads their sums."""
    observers = getattr(request.app.ctx, "observers", None)
    if observers is not None:
        observers.flush()


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


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs three object.__setattr__ calls per attempt
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
            UpstreamAttempt(  # positional, in field order: measured 400 -> 152 ns per record against keywords
                tag.record.request_id,
                tag.backend,
                tag.model,
                request.attempt + 1,
                status,
                None if error is None else redact(error.message),
                seconds * 1000,
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
