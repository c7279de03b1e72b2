"""Built-in usage and cost: prices every request record, sums usage by day, key and model (GET /v1/usage, admin),
and writes one log record per request at INFO (the usage log)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sanic import Request
from sanic.response import HTTPResponse, json

from ccproxy.events import EventBatch, RequestRecord
from ccproxy.hookspecs import RegisterObserver, RegisterRoute, hookimpl
from ccproxy.http.admin import require_admin
from ccproxy.http.errors import request_id_of
from ccproxy.interfaces import Observer
from ccproxy.keys import KeyTable
from ccproxy.logs import log_fields
from ccproxy.observers import flush_observers
from ccproxy.prices import PriceTable
from ccproxy.settings import Settings
from ccproxy.tasks import stop_task
from ccproxy.usage import SharedUnavailable, SharedUsage, UsageTotals, WorkerFiles, usage_report
from ccproxy.usage_line import UsageLines

if TYPE_CHECKING:
    from ccproxy.state import AppState

log = logging.getLogger("ccproxy.usage")
USAGE_MESSAGE = "request"
PUBLISH_SECONDS = 1.0  # how often a process publishes its sums to the shared usage (several workers or instances)
SHUTDOWN_PUBLISH_SECONDS = 5.0  # the last publish at shutdown waits no longer (a store that does not answer)
UNSHARED = "the shared usage sums could not be read: these are this process's sums only"


class Pricing(Observer):
    """Fills in `record.cost_usd` as the request finishes. Registered before other observers, so they all see the
    cost: at the event when an immediate observer reads finished records (a key's budget is counted before its next
    request), else first in each batch of the deferred ones (`fills_in_record`)."""

    fills_in_record = True

    def __init__(self, prices: PriceTable) -> None:
        self.prices = prices
        self.unpriced: set[str] = set()

    def request_done(self, record: RequestRecord) -> None:
        self._price((record,))

    def take_batch(self, batch: EventBatch) -> None:
        self._price(batch.done)

    def _price(self, records: Sequence[RequestRecord]) -> None:
        """Each record's cost, in one loop over a batch (no call per record)."""
        prices = self.prices
        last_model: str | None = None  # a batch's records mostly share the upstream model (the very str object)
        price = None
        for record in records:
            if record.cost_usd is not None:
                continue
            if record.upstream_cost_usd is not None:  # what the upstream reported wins (PriceTable.cost's rule)
                record.cost_usd = record.upstream_cost_usd
                continue
            model = record.upstream_model
            if not model:
                continue
            if model is not last_model:
                last_model, price = model, prices.price(model)
            if price is not None:
                record.cost_usd = price.cost(record)
            elif model not in self.unpriced:
                self._unpriced(model)

    def _unpriced(self, model: str) -> None:
        if len(self.unpriced) < 1000:
            self.unpriced.add(model)
            log.warning(
                'no price for upstream model %r: its requests have no cost (add [prices."%s"] to plugins.toml)',
                model,
                model,
            )


class UsageObserver(Observer):
    """Adds each priced record to the totals and logs it. Deferred: the records come in batches (the usage endpoint
    flushes the observers before it reads the totals), and each batch's lines are written as one block."""

    deferred = True

    def __init__(self, totals: UsageTotals) -> None:
        self.totals = totals
        self._template: dict[str, Any] | None = None
        self.lines = UsageLines(log, USAGE_MESSAGE)
        self._unwritten: list[RequestRecord] = []  # this batch's records, logged at batch_done

    def request_done(self, record: RequestRecord) -> None:
        self.totals.add(record)
        self._unwritten.append(record)

    def take_batch(self, batch: EventBatch) -> None:
        """The batch's finished requests added to the totals at once, and logged (batch_done)."""
        done = batch.done
        if done:
            self.totals.add_all(done)
            self._unwritten.extend(done)

    def batch_done(self) -> None:
        records, self._unwritten = self._unwritten, []
        if not records or not log.isEnabledFor(logging.INFO):
            return
        # Straight to ccproxy's JSON handlers when those are all they reach; else as log records, filters and all.
        if not self.lines.write_all(records):
            for record in records:
                log_fields(log, USAGE_MESSAGE, usage_fields(record), self._log_record)

    def _log_record(self, fields: dict[str, Any]) -> logging.LogRecord:
        """The usage line's LogRecord, copied from one made the ordinary way: LogRecord.__init__ (thread, process
        and source lookups) cost more than everything else of the line."""
        template = self._template
        if template is None:  # made in the serving process, on first use
            made = log.makeRecord(log.name, logging.INFO, "", 0, USAGE_MESSAGE, (), None)
            template = self._template = dict(made.__dict__)
        entry = logging.LogRecord.__new__(logging.LogRecord)
        values = entry.__dict__
        values.update(template)
        now = time.time()
        values["created"] = now
        values["msecs"] = (now - int(now)) * 1000
        values["relativeCreated"] = template["relativeCreated"] + (now - template["created"]) * 1000
        values["fields"] = fields
        return entry


def usage_fields(record: RequestRecord) -> dict[str, Any]:
    """The record as the log line's fields (a literal, not dataclasses.asdict: this runs per request). The request
    id is on every line already (ccproxy/logs.py)."""
    return {
        "endpoint": record.endpoint,
        "key_id": record.key_id,
        "client_model": record.client_model,
        "backend": record.backend,
        "upstream_model": record.upstream_model,
        "status": record.status,
        "error_type": record.error_type,
        "stream": record.stream,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "cost_usd": None if record.cost_usd is None else round(record.cost_usd, 8),
        "ttft_ms": None if record.ttft_ms is None else round(record.ttft_ms, 2),
        "total_ms": round(record.total_ms, 2),
        "retries": record.retries,
        "fallbacks": record.fallbacks,
    }


class UsagePlugin:
    """The observer and the GET /v1/usage endpoint: over this process's totals, or, with several workers (their
    files) or a shared cache backend (Redis), over every process's, which each publishes once a second."""

    def __init__(self, settings: Settings) -> None:
        self.prices = PriceTable.from_options(settings.price_options)
        self.totals = UsageTotals()
        self.key_names = {client.key_id: client.name for client in KeyTable.from_settings(settings).by_id.values()}
        self.directory = settings.metrics_dir
        self.shared: SharedUsage | None = None
        self._files: WorkerFiles | None = None
        self._state: AppState | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._publishing: asyncio.Lock | None = None  # one publish at a time: the periodic one and the endpoint's

    @hookimpl(tryfirst=True)
    def ccproxy_register_observers(self, register: RegisterObserver) -> None:
        register(Pricing(self.prices))
        register(UsageObserver(self.totals))

    @hookimpl
    def ccproxy_register_routes(self, register: RegisterRoute) -> None:
        register("/v1/usage", self.usage_endpoint, methods=("GET",), name="usage")

    @hookimpl
    async def ccproxy_startup(self, state: AppState) -> None:
        """The shared usage: the cache backend's (every instance), else the workers' files (this server's)."""
        await self._stop_publisher()  # started twice without a stop in between (an ASGI server's lifespan)
        self._state = state
        self._publishing = asyncio.Lock()  # made on the server's loop
        self.shared = state.cache.shared_usage_store()
        if self.shared is None and self.directory:
            # Here: in the worker, under the worker's pid; one file per process however often it starts serving (the
            # totals are the process's, whatever its restarts).
            if self._files is None or self._files.file.pid != os.getpid():
                self._files = WorkerFiles(self.directory)
            self.shared = self._files
        if self.shared is not None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish_every_second())

    @hookimpl
    async def ccproxy_shutdown(self, state: AppState) -> None:
        """The last sums published before the cache closes (bounded: a store that does not answer holds no stop)."""
        await self._stop_publisher()
        if self.shared is not None:
            if state.observers is not None:
                state.observers.flush()
            try:
                await asyncio.wait_for(self._publish(), SHUTDOWN_PUBLISH_SECONDS)
            except (TimeoutError, SharedUnavailable):
                log.warning("the last usage sums of this process were not published (the store did not answer)")
            except Exception:
                log.exception("the last usage sums of this process could not be published")
            await self.shared.close()

    async def _stop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        await stop_task(publisher)

    async def _publish_every_second(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            if self._state is not None and self._state.observers is not None:
                self._state.observers.flush()
            try:
                await self._publish()
            except SharedUnavailable:
                pass  # kept for the next publish; the store's outage is logged where it is noticed
            except Exception:  # the task must outlive any one failure (a full disk, a bug)
                log.exception("cannot publish the usage sums")

    async def _publish(self) -> None:
        if self.shared is not None and self._publishing is not None:
            async with self._publishing:
                await self.shared.publish(self.totals)

    async def usage_endpoint(self, request: Request) -> HTTPResponse:
        """GET /v1/usage[?day=YYYY-MM-DD][&key=key_…]: the sums of every worker and instance that share them, else
        this process's (admin)."""
        require_admin(request)
        flush_observers(request)
        day, key = request.args.get("day"), request.args.get("key")
        report = None
        if self.shared is not None:
            try:
                await self._publish()
                rows, since = await self.shared.read(self.totals, day=day)
            except Exception as exc:
                if not isinstance(exc, SharedUnavailable):
                    log.exception("cannot read the shared usage sums")
                report = self.totals.report(self.key_names, day=day, key=key)
                report["warning"] = UNSHARED
            else:
                report = usage_report(rows, self.key_names, since=since, scope=self.shared.scope, day=day, key=key)
        if report is None:
            report = self.totals.report(self.key_names, day=day, key=key)
        report["pid"] = os.getpid()
        return json(report, headers={"request-id": request_id_of(request)})


def plugin_for(settings: Settings) -> UsagePlugin:
    return UsagePlugin(settings)
