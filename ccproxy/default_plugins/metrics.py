"""Built-in metrics: GET /metrics (Prometheus text, every worker) and GET /v1/metrics (the original CCProxy's JSON
summary: latency percentiles, error rates, health per backend; of every worker, whose parts each writes once a second
when there are several)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby, repeat
from math import isfinite
from operator import attrgetter, is_not, truediv
from typing import TYPE_CHECKING, Any

from sanic import Request
from sanic.response import HTTPResponse, json, raw

from ccproxy.events import (
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    COST_USD,
    ERROR_TYPE,
    FALLBACKS,
    INPUT_TOKENS,
    IS_NOT_NONE,
    OUTPUT_TOKENS,
    RETRIES,
    TOTAL_MS,
    TTFT_MS,
    BreakerChange,
    CacheEvent,
    EventBatch,
    LimiterWait,
    RequestRecord,
    UpstreamAttempt,
)
from ccproxy.hookspecs import RegisterObserver, RegisterRoute, hookimpl
from ccproxy.http.errors import request_id_of
from ccproxy.interfaces import Observer
from ccproxy.metrics import AnySeries, Counter, Gauge, Histogram, MultiprocessFiles, exposition
from ccproxy.observers import flush_observers
from ccproxy.settings import Settings
from ccproxy.tasks import stop_task
from ccproxy.worker_files import SUMMARY_FILES, WorkerFile, alive

if TYPE_CHECKING:
    from ccproxy.http.admission import RequestGate
    from ccproxy.state import AppState

log = logging.getLogger("ccproxy.metrics")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")
FLUSH_SECONDS = 1.0  # how often a worker writes its sums for the others' scrapes (multi-worker serving)
RECENT = 1000  # requests per backend behind the JSON summary's percentiles and recent error rate
# Recent error rate -> health in the JSON summary.
DEGRADED_AT = 0.05
FAILING_AT = 0.5
NONE = "-"  # label value for what a record does not know (no backend yet, no upstream model)
BREAKER_VALUES = {"closed": 0.0, "half_open": 0.5, "open": 1.0}
MAX_KEY_SETS = 4096  # label sets whose series keys are kept (beyond: made per request)
# A batch's finished requests are counted per run of records with the same label set (take_batch), its attempts
# per backend and status; these pick the fields out in C.
_LABEL_SET = attrgetter("backend", "upstream_model", "status", "endpoint", "key_id")
_BACKEND_STATUS = attrgetter("backend", "status")


class BackendSummary:
    """What the JSON summary keeps per backend: totals and the last RECENT requests."""

    __slots__ = ("errors", "latencies", "recent_errors", "requests", "ttfts")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: deque[float] = deque(maxlen=RECENT)
        self.recent_errors: deque[bool] = deque(maxlen=RECENT)
        self.ttfts: deque[float] = deque(maxlen=RECENT)


@dataclass(frozen=True, slots=True)
class SeriesKeys:
    """One label set's keys into the series a finished request updates, made once (ProxyMetrics._new_keys)."""

    requests: tuple[str, ...]
    labels: tuple[str, str]  # backend, model: the histograms'
    input: tuple[str, ...]
    output: tuple[str, ...]
    cache_read: tuple[str, ...]
    cache_write: tuple[str, ...]
    cost: tuple[str, ...]
    summary: BackendSummary


class ProxyMetrics(Observer):
    """Counts every record into Prometheus series and the JSON summary; plain dict work per request, in batches
    (deferred: the endpoints and the file writer flush the observers before they read)."""

    deferred = True
    counts_in_flight = True  # the in-flight gauge from request_started / request_done

    def __init__(self) -> None:
        self.requests = Counter(
            "ccproxy_requests",
            "Requests answered, by backend, upstream model, HTTP status and endpoint",
            ("backend", "model", "status", "endpoint"),
        )
        self.latency = Histogram(
            "ccproxy_request_duration_seconds",
            "Time from the request to the last byte of the answer",
            ("backend", "model"),
            LATENCY_BUCKETS,
        )
        self.ttft = Histogram(
            "ccproxy_time_to_first_token_seconds",
            "Streams: time until the first content event was sent",
            ("backend", "model"),
            TTFT_BUCKETS,
        )
        self.tokens = Counter(
            "ccproxy_tokens", "Tokens by kind (input, output, cache_read, cache_write)", ("backend", "model", "kind")
        )
        self.cost = Counter("ccproxy_cost_usd", "Cost in US dollars", ("backend", "model", "key"))
        self.attempts = Counter(
            "ccproxy_upstream_attempts", "Calls to an upstream (retries included), by outcome", ("backend", "outcome")
        )
        self.retries = Counter("ccproxy_retries", "Retries on the same backend", ("backend",))
        self.fallbacks = Counter("ccproxy_fallbacks", "Fallbacks to the next target of a route", ("backend",))
        self.breaker = Gauge(
            "ccproxy_breaker_state", "Circuit breaker: 0 closed, 0.5 half-open, 1 open", ("backend",), mode="livemax"
        )
        self.limiter_waits = Counter(
            "ccproxy_limiter_waits", "Requests that waited for a backend's rate limiter", ("backend",)
        )
        self.limiter_wait_seconds = Counter(
            "ccproxy_limiter_wait_seconds", "Seconds spent waiting for a backend's rate limiter", ("backend",)
        )
        self.cache = Counter("ccproxy_cache_events", "Cache lookups and writes, by cache and kind", ("cache", "kind"))
        self.in_flight = Gauge("ccproxy_requests_in_flight", "Requests being answered now")
        self.summaries: dict[str, BackendSummary] = {}
        self.started = time.time()
        self.dirty = False
        self._statuses = {status: str(status) for status in range(100, 600)}
        self._keys: dict[tuple[str | None, str | None, int, str, str | None], SeriesKeys] = {}

    @property
    def series(self) -> Sequence[AnySeries]:
        return (
            self.requests,
            self.latency,
            self.ttft,
            self.tokens,
            self.cost,
            self.attempts,
            self.retries,
            self.fallbacks,
            self.breaker,
            self.limiter_waits,
            self.limiter_wait_seconds,
            self.cache,
            self.in_flight,
        )

    # ------------------------------------------------------------------------------------------ observer methods

    def request_started(self, record: RequestRecord) -> None:
        self.in_flight.add((), 1.0)
        self.dirty = True

    def request_done(self, record: RequestRecord) -> None:
        if self.counts_in_flight:
            self.in_flight.add((), -1.0)
        self.dirty = True
        self._count_run(_LABEL_SET(record), [record])

    def take_batch(self, batch: EventBatch) -> None:
        """A batch at once: its finished requests summed per run of records with one label set, without bytecode
        per record (the same sums, in the same order, as request_done one by one); its attempts tallied by backend
        and status."""
        if self.counts_in_flight and batch.started:
            self.in_flight.add((), float(len(batch.started)))
            self.dirty = True
        done = batch.done
        if done:
            if self.counts_in_flight:
                self.in_flight.add((), -float(len(done)))
            self.dirty = True
            for label_set, run in groupby(done, _LABEL_SET):
                self._count_run(label_set, list(run))
        attempts = batch.attempts
        if attempts:
            self._count_attempts(attempts)
        for event in batch.cache_events:
            self.cache_event(event)
        for change in batch.breaker_changes:
            self.breaker_change(change)
        for wait in batch.limiter_waits:
            self.limiter_wait(wait)

    def _count_run(self, label_set: tuple[Any, ...], run: list[RequestRecord]) -> None:
        """Records with one label set (`label_set`, _LABEL_SET of each), in the order they finished: the series keys
        made once per label set, then each sum without bytecode per record."""
        keys = self._keys.get(label_set)
        if keys is None:
            keys = self._new_keys(run[0])
        count = len(run)
        requests = self.requests.values
        requests[keys.requests] = requests.get(keys.requests, 0.0) + count
        totals_ms = list(map(TOTAL_MS, run))
        self.latency.observe_all(keys.labels, map(truediv, totals_ms, repeat(1000)))
        ttfts_ms = list(filter(IS_NOT_NONE, map(TTFT_MS, run)))
        if ttfts_ms:
            self.ttft.observe_all(keys.labels, map(truediv, ttfts_ms, repeat(1000)))
        tokens = self.tokens.values
        for key, field in (
            (keys.input, INPUT_TOKENS),
            (keys.output, OUTPUT_TOKENS),
            (keys.cache_read, CACHE_READ_TOKENS),
            (keys.cache_write, CACHE_WRITE_TOKENS),
        ):
            added = sum(map(field, run))
            if added:
                tokens[key] = tokens.get(key, 0.0) + added
        costs = list(filter(None, map(COST_USD, run)))  # what request_done adds: the truthy ones
        if costs:
            cost = self.cost.values
            cost[keys.cost] = sum(costs, cost.get(keys.cost, 0.0))
        retries = sum(map(RETRIES, run))
        if retries:
            self.retries.inc((keys.labels[0],), retries)
        fallbacks = sum(map(FALLBACKS, run))
        if fallbacks:
            self.fallbacks.inc((keys.labels[0],), fallbacks)
        summary = keys.summary
        status = label_set[2]
        summary.requests += count
        if status >= 500:
            summary.errors += count
            summary.recent_errors.extend(repeat(True, count))
        elif status >= 400:
            summary.recent_errors.extend(repeat(False, count))
        else:  # a 2xx or 3xx failed when it carries an error type (a stream that ended with an error event)
            failed = list(map(is_not, map(ERROR_TYPE, run), repeat(None)))
            summary.errors += sum(failed)
            summary.recent_errors.extend(failed)
        summary.latencies.extend(totals_ms)
        summary.ttfts.extend(ttfts_ms)

    def _count_attempts(self, attempts: list[UpstreamAttempt]) -> None:
        failures = False  # attempts that got no status: counted by their error, one by one
        for (backend, status), count in Tally(map(_BACKEND_STATUS, attempts)).items():
            if status is None:
                failures = True
            else:
                self.attempts.inc((backend, str(status)), float(count))
        if failures:
            for attempt in attempts:
                if attempt.status is None:
                    self.upstream_attempt(attempt)
        self.dirty = True

    def _new_keys(self, record: RequestRecord) -> SeriesKeys:
        """The series keys of the record's label set, capped like every series (MAX_SERIES), kept for the next
        request with the same labels (up to MAX_KEY_SETS of them)."""
        backend = record.backend or NONE
        labels = (backend, record.upstream_model or NONE)
        status = self._statuses.get(record.status) or str(record.status)
        summary = self.summaries.get(backend)
        if summary is None:
            summary = self.summaries[backend] = BackendSummary()
        keys = SeriesKeys(
            requests=self.requests.key((*labels, status, record.endpoint)),
            labels=labels,
            input=self.tokens.key((*labels, "input")),
            output=self.tokens.key((*labels, "output")),
            cache_read=self.tokens.key((*labels, "cache_read")),
            cache_write=self.tokens.key((*labels, "cache_write")),
            cost=self.cost.key((*labels, record.key_id or NONE)),
            summary=summary,
        )
        if len(self._keys) < MAX_KEY_SETS:
            self._keys[(record.backend, record.upstream_model, record.status, record.endpoint, record.key_id)] = keys
        return keys

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        outcome = str(attempt.status) if attempt.status is not None else (attempt.error or "error")[:40]
        self.attempts.inc((attempt.backend, outcome))
        self.dirty = True

    def cache_event(self, event: CacheEvent) -> None:
        self.cache.inc((event.cache, event.kind))
        self.dirty = True

    def breaker_change(self, event: BreakerChange) -> None:
        self.breaker.set((event.backend,), BREAKER_VALUES.get(event.state, 1.0))
        self.dirty = True

    def limiter_wait(self, event: LimiterWait) -> None:
        self.limiter_waits.inc((event.backend,))
        self.limiter_wait_seconds.inc((event.backend,), event.seconds)
        self.dirty = True

    # ------------------------------------------------------------------------------------------ JSON summary

    def summary(self, others: Sequence[Any] = (), *, scope: str = "process") -> dict[str, Any]:
        """GET /v1/metrics: requests, latency percentiles, error rates and health per backend, of this process and
        of `others` (other workers' `snapshot()`s; one that is not a snapshot is skipped)."""
        merged = _Merged()
        merged.add(self.snapshot())
        for snapshot in others:
            try:
                merged.add(snapshot)
            except Exception:  # not a snapshot (another process's file): skipped, never the endpoint's failure
                continue
        return merged.summary(scope)

    def snapshot(self) -> dict[str, Any]:
        """What the JSON summary is made of, as JSON: what another worker merges into its own (summary)."""
        return {
            "pid": os.getpid(),
            "started": self.started,
            "in_flight": self.in_flight.values.get((), 0.0),
            "tokens": {
                kind: sum(v for key, v in self.tokens.values.items() if key[-1] == kind) for kind in TOKEN_KINDS
            },
            "cost_usd": sum(self.cost.values.values()),
            "backends": {
                name: {
                    "requests": summary.requests,
                    "errors": summary.errors,
                    "latencies": list(summary.latencies),
                    "recent_errors": list(summary.recent_errors),
                    "ttfts": list(summary.ttfts),
                    "breaker": self.breaker.values.get((name,)),
                }
                for name, summary in self.summaries.items()
            },
        }


class _Merged:
    """Snapshots of one or more processes summed into one JSON summary: counts added, the recent requests behind the
    percentiles and the recent error rate put together, each backend's breaker at its worst."""

    def __init__(self) -> None:
        self.live = 0  # processes still running among those added
        self.started = time.time()
        self.in_flight = 0.0
        self.tokens = dict.fromkeys(TOKEN_KINDS, 0.0)
        self.cost = 0.0
        self.backends: dict[str, dict[str, Any]] = {}

    def add(self, snapshot: Any) -> None:
        """Add one process's snapshot; raises (and changes nothing) when it is not one, or holds a count that is not a
        finite number."""
        backends = {str(name): _backend_part(part) for name, part in snapshot["backends"].items()}  # checked first
        tokens = {kind: _finite(snapshot["tokens"][kind]) for kind in TOKEN_KINDS}
        started, in_flight = _finite(snapshot["started"]), _finite(snapshot["in_flight"])
        cost, live = _finite(snapshot["cost_usd"]), snapshot.get("live", True) is True
        if live:
            self.live += 1
        self.started = min(self.started, started)
        self.in_flight += in_flight
        self.cost += cost
        for kind, value in tokens.items():
            self.tokens[kind] += value
        for name, part in backends.items():
            into = self.backends.get(name)
            if into is None:
                self.backends[name] = part
                continue
            for field in ("requests", "errors"):
                into[field] += part[field]
            for field in ("latencies", "recent_errors", "ttfts"):
                into[field].extend(part[field])
            if part["breaker"] is not None:
                into["breaker"] = max(into["breaker"] or 0.0, part["breaker"])

    def summary(self, scope: str) -> dict[str, Any]:
        backends = {name: _backend_summary(part) for name, part in self.backends.items()}
        requests = sum(part["requests"] for part in self.backends.values())
        errors = sum(part["errors"] for part in self.backends.values())
        summary: dict[str, Any] = {
            "object": "metrics",
            "scope": scope,
            "pid": os.getpid(),
        }
        if scope != "process":
            summary["workers"] = self.live
        summary.update(
            {
                "uptime_s": round(time.time() - self.started, 1),
                "requests": requests,
                "errors": errors,
                "error_rate": round(errors / requests, 4) if requests else 0.0,
                "in_flight": int(self.in_flight),
                "latency_ms": percentiles([ms for part in self.backends.values() for ms in part["latencies"]]),
                "ttft_ms": percentiles([ms for part in self.backends.values() for ms in part["ttfts"]]),
                "tokens": {kind: int(value) for kind, value in self.tokens.items()},
                "cost_usd": round(self.cost, 6),
                "backends": backends,
            }
        )
        return summary


def _backend_part(part: Any) -> dict[str, Any]:
    """One backend of a snapshot, with its types checked (a file another process wrote)."""
    breaker = part["breaker"]
    return {
        "requests": int(_finite(part["requests"])),
        "errors": int(_finite(part["errors"])),
        "latencies": list(map(_finite, part["latencies"])),
        "recent_errors": [bool(failed) for failed in part["recent_errors"]],
        "ttfts": list(map(_finite, part["ttfts"])),
        "breaker": None if breaker is None else _finite(breaker),
    }


def _finite(value: Any) -> float:
    """A number from another process's snapshot; ValueError for anything else (an infinity, NaN, text)."""
    number = float(value)
    if not isfinite(number) or isinstance(value, (bool, str)):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _backend_summary(part: dict[str, Any]) -> dict[str, Any]:
    recent_errors = part["recent_errors"]
    recent = len(recent_errors)
    recent_rate = sum(recent_errors) / recent if recent else 0.0
    state = part["breaker"]
    health = "healthy" if recent_rate < DEGRADED_AT else "degraded" if recent_rate < FAILING_AT else "failing"
    if state is not None and state >= 1.0:
        health = "failing"
    requests = part["requests"]
    return {
        "requests": requests,
        "errors": part["errors"],
        "error_rate": round(part["errors"] / requests, 4) if requests else 0.0,
        "recent_error_rate": round(recent_rate, 4),
        "latency_ms": percentiles(part["latencies"]),
        "ttft_ms": percentiles(part["ttfts"]),
        "breaker": None if state is None else _breaker_name(state),
        "health": health,
    }


def _breaker_name(state: float) -> str:
    """The state's name for a gauge value (the nearest, for a value no state has)."""
    return min(BREAKER_VALUES, key=lambda name: abs(BREAKER_VALUES[name] - state))


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50/p90/p95/p99 (nearest rank) of `values`, in ms."""
    if not values:
        return {"p50": None, "p90": None, "p95": None, "p99": None, "samples": 0}
    ordered = sorted(values)
    last = len(ordered) - 1

    def rank(q: float) -> float:
        return round(ordered[min(last, int(q * len(ordered)))], 2)

    return {"p50": rank(0.5), "p90": rank(0.9), "p95": rank(0.95), "p99": rank(0.99), "samples": len(ordered)}


class GatedProxyMetrics(ProxyMetrics):
    """ProxyMetrics when the request gate (MAX_CONCURRENT_REQUESTS) counts the requests in flight already: the gauge
    is set from it before each read, and no request_started event is queued per request."""

    request_started = Observer.request_started  # not overridden: ccproxy/observers.py then skips the event
    counts_in_flight = False


class MetricsPlugin:
    """The observer, the two endpoints and, with several workers, the task writing this worker's sums."""

    def __init__(self, settings: Settings) -> None:
        self.metrics = GatedProxyMetrics() if settings.max_concurrent_requests > 0 else ProxyMetrics()
        self._state: AppState | None = None
        self.directory = settings.metrics_dir
        self.files: MultiprocessFiles | None = None
        self.summary_file: WorkerFile | None = None  # the JSON summary's parts, for the other workers' /v1/metrics
        self._summary_unwritten = False
        self._flusher: asyncio.Task[None] | None = None

    @hookimpl
    def ccproxy_register_observers(self, register: RegisterObserver) -> None:
        register(self.metrics)

    @hookimpl
    def ccproxy_register_routes(self, register: RegisterRoute) -> None:
        register("/metrics", self.prometheus, methods=("GET",), name="metrics")
        register("/v1/metrics", self.json_summary, methods=("GET",), name="metrics_summary")

    @hookimpl
    async def ccproxy_startup(self, state: AppState) -> None:
        self._state = state  # its observers are flushed, its gate read, before the series are read
        if self.directory:
            self.files = MultiprocessFiles(self.directory)  # here: in the worker, under the worker's pid
            if self.summary_file is None or self.summary_file.pid != os.getpid():  # one per process
                self.summary_file = WorkerFile(self.directory, SUMMARY_FILES)
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every_second())

    @hookimpl
    async def ccproxy_shutdown(self) -> None:
        flusher, self._flusher = self._flusher, None
        await stop_task(flusher)
        if self.files is not None:
            self._flush_observers()
            self._write_summary()
            try:
                self.files.write(self.metrics.series)
            except OSError:
                log.exception("cannot write metrics to %s", self.directory)
            self.files.close(dead=True)

    def _flush_observers(self) -> None:
        """Deliver the requests the observers still hold (ccproxy/observers.py) before the series are read; the
        in-flight gauge from the request gate when it is the gate's."""
        if self._state is None:
            return
        if self._state.observers is not None:
            self._state.observers.flush()
        self._gauge_in_flight(self._state.gate)

    def _gauge_in_flight(self, gate: RequestGate | None) -> None:
        if not self.metrics.counts_in_flight and gate is not None:
            in_flight = float(gate.in_flight)
            if self.metrics.in_flight.values.get(()) != in_flight:
                self.metrics.in_flight.set((), in_flight)
                self.metrics.dirty = True  # written for the other workers, like a finished request

    def _read(self, request: Request) -> None:
        """Before an endpoint reads the series: the app's observers flushed, the in-flight gauge current."""
        flush_observers(request)
        self._gauge_in_flight(request.app.ctx.gate)

    async def _flush_every_second(self) -> None:
        self._write_summary()  # at once: the other workers count this one (`workers`) before it serves anything
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self._flush_observers()
            if (self.metrics.dirty or self._summary_unwritten) and self.files is not None:
                self.metrics.dirty = False
                try:
                    self.files.write(self.metrics.series)
                except OSError:
                    log.exception("cannot write metrics to %s", self.directory)
                self._write_summary()

    def _write_summary(self) -> None:
        """This worker's part of /v1/metrics for the others; after a failed write, written again the next second."""
        if self.summary_file is not None:
            try:
                self.summary_file.write(self.metrics.snapshot())
            except OSError:
                self._summary_unwritten = True
                log.exception("cannot write the metrics summary to %s", self.directory)
            else:
                self._summary_unwritten = False

    async def prometheus(self, request: Request) -> HTTPResponse:
        self._read(request)
        body = exposition(self.metrics.series, self.files)
        return raw(body, content_type=PROMETHEUS_CONTENT_TYPE, headers={"request-id": request_id_of(request)})

    async def json_summary(self, request: Request) -> HTTPResponse:
        """GET /v1/metrics: this process's summary, or with several workers every worker's, put together."""
        self._read(request)
        if self.summary_file is None:
            summary = self.metrics.summary()
        else:
            summary = self.metrics.summary(_other_workers(self.summary_file), scope="server")
        return json(summary, headers={"request-id": request_id_of(request)})


def _other_workers(file: WorkerFile) -> list[Any]:
    """The other workers' snapshots. A worker that exited keeps its counts (what it served still counts) and loses
    what described it live: nothing in flight, no breaker, no recent requests (as /metrics drops its live gauges)."""
    return [snapshot if alive(pid) else _exited(snapshot) for pid, snapshot in file.others()]


def _exited(snapshot: Any) -> Any:
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("backends"), dict):
        return snapshot  # not a snapshot: skipped when merged
    backends = {
        name: {**part, "latencies": [], "recent_errors": [], "ttfts": [], "breaker": None}
        if isinstance(part, dict)
        else part
        for name, part in snapshot["backends"].items()
    }
    return {**snapshot, "in_flight": 0, "backends": backends, "live": False}


def plugin_for(settings: Settings) -> MetricsPlugin:
    return MetricsPlugin(settings)
