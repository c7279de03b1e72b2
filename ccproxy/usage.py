"""Usage totals by day (UTC), key and model, summed in this process from the request records."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
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
# What decides a record's row (add_all groups runs of records by it, in C).
_ROW_FIELDS = attrgetter("key_id", "upstream_model", "client_model")


class UsageTotals:
    """(day, key id, model) -> counters. The model is the upstream model when known, else the requested one."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.rows: dict[tuple[str, str, str], Row] = {}
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
        day, rows = self._day, self.rows
        for (key_id, upstream_model, client_model), grouped in groupby(records, _ROW_FIELDS):
            run = list(grouped)
            key = (day, key_id or "-", upstream_model or client_model or "-")
            row = rows.get(key)
            if row is None:
                row = rows[key] = [0.0] * len(COUNTERS)
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
        oldest = time.strftime("%Y-%m-%d", time.gmtime(now - KEEP_DAYS * 86400))
        for key in [key for key in self.rows if key[0] < oldest]:
            del self.rows[key]

    def report(self, names: Mapping[str, str], *, day: str | None = None, key: str | None = None) -> dict[str, Any]:
        """The sums for GET /v1/usage: totals, by day, by key, by model and every row; optionally one day / key."""
        rows = [
            (row_key, counters)
            for row_key, counters in sorted(self.rows.items())
            if (day is None or row_key[0] == day) and (key is None or row_key[1] == key)
        ]
        totals = _sum(counters for _, counters in rows)
        return {
            "object": "usage",
            "scope": "process",
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
            "totals": totals,
            "by_day": _grouped(rows, 0),
            "by_key": {key_id: {"name": names.get(key_id, ""), **sums} for key_id, sums in _grouped(rows, 1).items()},
            "by_model": _grouped(rows, 2),
            "rows": [
                {"day": d, "key_id": k, "key_name": names.get(k, ""), "model": m, **_named(counters)}
                for (d, k, m), counters in rows
            ],
        }


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
