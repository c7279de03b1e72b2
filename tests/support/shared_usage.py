"""Scenarios every SharedUsage must pass, run on the workers' files (tests/test_shared_usage.py) and on Redis
(plugins/ccproxy-redis/tests/test_redis_usage.py): two processes' sums read as one, from either process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ccproxy.events import RequestRecord
from ccproxy.usage import COUNTERS, Row, RowKey, SharedUsage, UsageTotals

YESTERDAY = 86400.0


class Wall:
    """A wall clock a test moves (days), starting now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def day_of(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def done(key_id: str | None, model: str, input_tokens: int, output_tokens: int, cost: float | None) -> RequestRecord:
    return RequestRecord(
        "req_x",
        key_id,
        client_model="claude-sonnet-5",
        upstream_model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
    )


def named(rows: dict[RowKey, Row]) -> dict[RowKey, dict[str, Any]]:
    """Rows as {counter: value}, costs approximate (a store may keep them as decimal text)."""
    return {
        row_key: {name: pytest.approx(value) for name, value in zip(COUNTERS, counters, strict=True)}
        for row_key, counters in rows.items()
    }


async def two_processes_read_as_one(first: SharedUsage, second: SharedUsage) -> None:
    """Each process publishes its own sums; either reads both, once each, however often it publishes."""
    wall = Wall()
    today = day_of(wall.now)
    mine, theirs = UsageTotals(wall), UsageTotals(wall)
    mine.add_all([done("key_a", "gpt-5", 10, 5, 0.5), done("key_a", "gpt-5", 1, 1, None)])
    theirs.add_all([done("key_a", "gpt-5", 100, 50, 1.5), done(None, "gpt-4o-mini", 7, 3, 0.25)])
    for store, totals in ((first, mine), (second, theirs)):
        await store.publish(totals)
        await store.publish(totals)  # nothing new: nothing added twice
    want = {
        (today, "key_a", "gpt-5"): [3, 0, 111, 56, 0, 0, 2.0, 1],
        (today, "-", "gpt-4o-mini"): [1, 0, 7, 3, 0, 0, 0.25, 0],
    }
    for store, totals in ((first, mine), (second, theirs)):
        rows, since = await store.read(totals)
        assert named(rows) == named({key: [float(value) for value in row] for key, row in want.items()})
        assert since <= min(mine.since, theirs.since) + 1e-3

    # More after a publish: only the difference is added.
    mine.add_all([done("key_a", "gpt-5", 1000, 0, 1.0)])
    await first.publish(mine)
    rows, _ = await second.read(theirs)
    assert rows[(today, "key_a", "gpt-5")][:4] == [4.0, 0.0, 1111.0, 56.0]
    assert rows[(today, "key_a", "gpt-5")][6] == pytest.approx(3.0)


async def one_day_is_read_alone(first: SharedUsage, second: SharedUsage) -> None:
    """`day` reads that day's rows only; rows of several days sum per day."""
    wall = Wall()
    mine, theirs = UsageTotals(wall), UsageTotals(wall)
    wall.now -= YESTERDAY
    mine.add_all([done("key_a", "gpt-5", 1, 1, 0.1)])
    theirs.add_all([done("key_a", "gpt-5", 2, 2, 0.2)])
    yesterday = day_of(wall.now)
    wall.now += YESTERDAY
    mine.add_all([done("key_a", "gpt-5", 4, 4, 0.4)])
    today = day_of(wall.now)
    await first.publish(mine)
    await second.publish(theirs)
    rows, _ = await first.read(mine, day=yesterday)
    assert list(rows) == [(yesterday, "key_a", "gpt-5")] and rows[(yesterday, "key_a", "gpt-5")][:4] == [2, 0, 3, 3]
    rows, _ = await second.read(theirs, day=today)
    assert list(rows) == [(today, "key_a", "gpt-5")] and rows[(today, "key_a", "gpt-5")][:4] == [1, 0, 4, 4]
    rows, _ = await second.read(theirs)
    assert sorted(rows) == [(yesterday, "key_a", "gpt-5"), (today, "key_a", "gpt-5")]
