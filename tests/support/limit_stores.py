"""One scenario of `LimitStore.check` that every store must pass the same way (the in-process store in
tests/test_quota.py, ccproxy-redis's in its tests): the order of the limits, what each refusal says, and that a
refused request is not counted."""

from __future__ import annotations

import time

from ccproxy.quota import LimitStore, Refusal


async def check_in_order(store: LimitStore) -> None:
    """`store` on a fake clock starting at 100 (one process)."""
    tpm, budget, rpm = ("tpm:k", 1000), ("budget:k:2026-11-30", 1.0), ("rpm:k", 2)
    store.add("tpm:k", 1000, now=100.0)
    await store.flush()
    # The tokens window first: full until the 1,000 tokens leave it at 160. The request is not counted in rpm.
    assert await store.check(110.0, tpm=tpm, budget=budget, rpm=rpm) == Refusal("tpm", 50.0)
    store.spend(budget[0], 1.5, time.time() + 3600)
    await store.flush()
    # Then the budget: spent over its limit (what was spent is the refusal's value).
    assert await store.check(161.0, tpm=tpm, budget=budget, rpm=rpm) == Refusal("budget", 1.5)
    # Then requests per minute: counted only when every limit holds, so two fit and the third waits 60 s.
    assert await store.check(161.0, tpm=tpm, rpm=rpm) is None
    assert await store.check(161.0, rpm=rpm) is None
    assert await store.check(161.0, tpm=tpm, rpm=rpm) == Refusal("rpm", 60.0)
    assert await store.check(161.0) is None  # a key without limits


async def record_both(store: LimitStore) -> None:
    """`record` adds a finished request's tokens to its window and its cost to its budget (fake clock at 100)."""
    ends = time.time() + 3600
    store.record(100.0, tokens=("tpm:r", 600.0), cost=("budget:r:2026-11-30", 0.25, ends))
    store.record(100.0, tokens=("tpm:r", 400.0))
    store.record(100.0, cost=("budget:r:2026-11-30", 0.5, ends))
    await store.flush()
    assert await store.over("tpm:r", 1000, now=130.0) == 30.0  # 1,000 tokens, until they leave at 160
    assert await store.spent("budget:r:2026-11-30") == 0.75
