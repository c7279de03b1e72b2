"""The in-memory limit store: sliding windows for rpm / tpm, spending per UTC day or month."""

from __future__ import annotations

import calendar

import pytest

from ccproxy.quota import MemoryLimitStore, period_bounds
from tests.support.limit_stores import check_in_order, record_both


async def test_take_counts_events_in_a_sliding_minute() -> None:
    store = MemoryLimitStore()
    assert [await store.take("rpm:k", 2, now) for now in (0.0, 10.0)] == [None, None]
    assert await store.take("rpm:k", 2, 30.0) == pytest.approx(30.0)  # the first leaves at 60
    assert await store.take("rpm:k", 2, 60.0) is None  # it has left
    assert await store.take("rpm:k", 2, 61.0) == pytest.approx(9.0)
    assert await store.take("rpm:other", 2, 61.0) is None


async def test_over_sums_amounts_added_after_requests() -> None:
    store = MemoryLimitStore()
    assert await store.over("tpm:k", 100, 0.0) is None
    store.add("tpm:k", 60, 0.0)
    store.add("tpm:k", 50, 20.0)
    assert await store.over("tpm:k", 100, 30.0) == pytest.approx(30.0)
    assert await store.over("tpm:k", 100, 60.0) is None  # 60 tokens left the window: 50 < 100


async def test_spending_per_period_and_forgetting_ended_periods() -> None:
    store = MemoryLimitStore()
    assert await store.spent("budget:k:2026-11-29") == 0.0
    store.spend("budget:k:2026-11-29", 0.25, expires_at=1.0)  # already ended: dropped when a new period begins
    store.spend("budget:k:2026-11-29", 0.5, expires_at=1.0)
    assert await store.spent("budget:k:2026-11-29") == pytest.approx(0.75)
    store.spend("budget:k:2999-01-01", 1.0, expires_at=1e12)
    assert await store.spent("budget:k:2026-11-29") == 0.0
    assert await store.spent("budget:k:2999-01-01") == 1.0


def test_period_bounds_are_utc_days_and_months() -> None:
    noon = calendar.timegm((2026, 11, 29, 12, 0, 0))
    assert period_bounds("day", noon) == ("2026-11-29", calendar.timegm((2026, 11, 30, 0, 0, 0)))
    assert period_bounds("month", noon) == ("2026-11", calendar.timegm((2026, 12, 1, 0, 0, 0)))
    december = calendar.timegm((2026, 12, 31, 23, 59, 59))
    assert period_bounds("month", december) == ("2026-12", calendar.timegm((2027, 1, 1, 0, 0, 0)))
    assert period_bounds("day", december)[1] == calendar.timegm((2027, 1, 1, 0, 0, 0))


async def test_check_asks_the_limits_in_order_and_counts_only_a_request_that_fits() -> None:
    await check_in_order(MemoryLimitStore())


async def test_record_adds_tokens_and_cost() -> None:
    await record_both(MemoryLimitStore())
