"""Usage totals by day (UTC), key and model: summed in each process from its request records, and shared beyond it.

Each process sums its own records (UsageTotals). What GET /v1/usage reports beyond one process comes from a
SharedUsage: the server's workers' files (WorkerFiles, several workers on one machine) or a store every instance
writes to (the Redis cache backend's, `CacheBackend.shared_usage_store()`). Processes publish what they summed once a
second and before the endpoint reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from itertools import groupby, repeat
from operator import attrgetter, ge, is_not, or_
from typing import Any

from ccproxy.events import (
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    COST_USD,
    ERROR_TYPE,
    INPUT_TOKENS,
    IS_NOT_NONE,
    OUTPUT_TOKENS,
    STATUS,
    RequestRecord,
)
from ccproxy.quota import period_bounds
from ccproxy.worker_files import USAGE_FILES, WorkerFile

KEEP_DAYS = 92  # days of totals kept; older days are dropped when a new day begins
# The order of the counters in a row (a list, so the per-request update is a few index additions).
COUNTERS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "unpriced_requests",
)
Row = list[float]
RowKey = tuple[str, str, str]  # day (UTC, YYYY-MM-DD), key id ("-" for none), model
# What decides a record's row (add_all groups runs of records by it, in C).
_ROW_FIELDS = attrgetter("key_id", "upstream_model", "client_model")


class UsageTotals:
    """(day, key id, model) -> counters. The model is the upstream model when known, else the requested one."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.rows: dict[RowKey, Row] = {}
        # The rows added to since a SharedUsage last took them (one set addition per run of records in a batch).
        self.changed: set[RowKey] = set()
        self.since = wall()
        self._day = ""
        self._day_ends = 0.0

    def add(self, record: RequestRecord) -> None:
        self.add_all([record])

    def add_all(self, records: list[RequestRecord]) -> None:
        """Each of `records`, summed per run of records with one key and model, without bytecode per record."""
        now = self.wall()
        if now >= self._day_ends:
            self._new_day(now)
        day, rows, changed = self._day, self.rows, self.changed
        for (key_id, upstream_model, client_model), grouped in groupby(records, _ROW_FIELDS):
            run = list(grouped)
            key = (day, key_id or "-", upstream_model or client_model or "-")
            row = rows.get(key)
            if row is None:
                row = rows[key] = [0.0] * len(COUNTERS)
            changed.add(key)
            row[0] += len(run)
            row[1] += sum(
                map(or_, map(ge, map(STATUS, run), repeat(400)), map(is_not, map(ERROR_TYPE, run), repeat(None)))
            )
            row[2] += sum(map(INPUT_TOKENS, run))
            row[3] += sum(map(OUTPUT_TOKENS, run))
            row[4] += sum(map(CACHE_READ_TOKENS, run))
            row[5] += sum(map(CACHE_WRITE_TOKENS, run))
            costs = list(map(COST_USD, run))
            unpriced = costs.count(None)
            if unpriced:
                row[7] += unpriced
                row[6] = sum(filter(IS_NOT_NONE, costs), row[6])
            else:
                row[6] = sum(costs, row[6])

    def _new_day(self, now: float) -> None:
        self._day, self._day_ends = period_bounds("day", now)
        oldest = self.oldest_day(now)
        for key in [key for key in self.rows if key[0] < oldest]:
            del self.rows[key]
            self.changed.discard(key)

    def report(self, names: Mapping[str, str], *, day: str | None = None, key: str | None = None) -> dict[str, Any]:
        """This process's sums for GET /v1/usage (see `usage_report`)."""
        return usage_report(self.rows, names, since=self.since, scope="process", day=day, key=key)

    def oldest_day(self, now: float | None = None) -> str:
        """The first day whose rows are kept at `now` (default: the wall clock's now); older ones are dropped when a
        new day begins."""
        moment = self.wall() if now is None else now
        return time.strftime("%Y-%m-%d", time.gmtime(moment - KEEP_DAYS * 86400))


def usage_report(
    rows: Mapping[RowKey, Row],
    names: Mapping[str, str],
    *,
    since: float,
    scope: str,
    day: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """The sums for GET /v1/usage: totals, by day, by key, by model and every row; optionally one day / key.
    `scope`: whose requests they count ("process", "server": every worker, "fleet": every instance)."""
    chosen = [
        (row_key, counters)
        for row_key, counters in sorted(rows.items())
        if (day is None or row_key[0] == day) and (key is None or row_key[1] == key)
    ]
    totals = _sum(counters for _, counters in chosen)
    return {
        "object": "usage",
        "scope": scope,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since)),
        "totals": totals,
        "by_day": _grouped(chosen, 0),
        "by_key": {key_id: {"name": names.get(key_id, ""), **sums} for key_id, sums in _grouped(chosen, 1).items()},
        "by_model": _grouped(chosen, 2),
        "rows": [
            {"day": d, "key_id": k, "key_name": names.get(k, ""), "model": m, **_named(counters)}
            for (d, k, m), counters in chosen
        ],
    }


def add_rows(into: dict[RowKey, Row], rows: Iterable[tuple[RowKey, Row]]) -> None:
    """Sum `rows` into `into`, counter by counter."""
    for row_key, counters in rows:
        row = into.get(row_key)
        if row is None:
            into[row_key] = list(counters)
        else:
            for index, value in enumerate(counters):
                row[index] += value


class SharedUnavailable(Exception):
    """The shared usage could not be read now (its store is down): the endpoint answers with this process's sums."""


class SharedUsage:
    """Usage totals summed beyond this process: every process publishes its own, any process reads the sum.

    `publish` is called once a second, before a read and at shutdown, from one task at a time per process; it must
    not lose what it could not deliver (the next call sends it). `read` answers every process's rows, this one's
    included as of its last `publish` (or fresher), and the earliest `since` among them."""

    scope = "fleet"

    async def publish(self, totals: UsageTotals) -> None:
        raise NotImplementedError

    async def read(self, totals: UsageTotals, *, day: str | None = None) -> tuple[dict[RowKey, Row], float]:
        """Every process's rows (of `day` only, when given) and since when they count; raises SharedUnavailable."""
        raise NotImplementedError

    async def close(self) -> None:
        """Called at shutdown, after the last publish."""


class WorkerFiles(SharedUsage):
    """The workers of one server (`ccproxy serve --workers N`) share their sums through files (ccproxy/worker_files.py:
    `usage_<pid>-<random>.json` in the server's metrics directory, replaced whole). A read sums every worker's file,
    this worker's live rows instead of its own file. The files of workers that exited stay: what they served still
    counts."""

    scope = "server"

    def __init__(self, directory: str, pid: int | None = None) -> None:
        self.file = WorkerFile(directory, USAGE_FILES, pid)
        self._written = False

    @property
    def path(self) -> str:
        return self.file.path

    async def publish(self, totals: UsageTotals) -> None:
        if self._written and not totals.changed:
            return
        rows = [[*row_key, *counters] for row_key, counters in totals.rows.items()]
        self.file.write({"since": totals.since, "rows": rows})  # on OSError `changed` stays: written next time
        totals.changed.clear()
        self._written = True

    async def read(self, totals: UsageTotals, *, day: str | None = None) -> tuple[dict[RowKey, Row], float]:
        rows: dict[RowKey, Row] = {}
        since = totals.since
        oldest = totals.oldest_day()
        for _, content in self.file.others():
            found = _worker_rows(content)
            if found is None:
                continue
            file_since, file_rows = found
            since = min(since, file_since)
            add_rows(rows, ((k, c) for k, c in file_rows if k[0] >= oldest and (day is None or k[0] == day)))
        add_rows(rows, ((k, c) for k, c in totals.rows.items() if day is None or k[0] == day))
        return rows, since


def _worker_rows(content: Any) -> tuple[float, list[tuple[RowKey, Row]]] | None:
    """A worker's file's since and rows, or None when it is not one ccproxy wrote (skipped)."""
    try:
        rows = [
            ((str(entry[0]), str(entry[1]), str(entry[2])), [float(value) for value in entry[3:]])
            for entry in content["rows"]
            if len(entry) == 3 + len(COUNTERS)
        ]
        return float(content["since"]), rows
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def _named(counters: Row) -> dict[str, Any]:
    named: dict[str, Any] = {name: int(value) for name, value in zip(COUNTERS, counters, strict=True)}
    named["cost_usd"] = round(counters[6], 6)
    return named


def _sum(rows: Any) -> dict[str, Any]:
    total = [0.0] * len(COUNTERS)
    for counters in rows:
        for index, value in enumerate(counters):
            total[index] += value
    return _named(total)


def _grouped(rows: list[tuple[tuple[str, str, str], Row]], part: int) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Row]] = {}
    for row_key, counters in rows:
        groups.setdefault(row_key[part], []).append(counters)
    return {name: _sum(members) for name, members in groups.items()}
