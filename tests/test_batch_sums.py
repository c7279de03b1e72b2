"""The built-in deferred observers take each batch whole (Observer.take_batch) and sum it with C-level iteration, over
runs of records with one label set; what they end up with must be exactly what the events one by one (their
per-event methods, runs of one) give: every Prometheus series, the JSON summary's figures, the usage totals, the
prices filled in."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy.default_plugins.metrics import GatedProxyMetrics, ProxyMetrics
from ccproxy.default_plugins.usage import Pricing
from ccproxy.events import (
    EVENT_METHODS,
    BreakerChange,
    CacheEvent,
    EventBatch,
    LimiterWait,
    RequestRecord,
    UpstreamAttempt,
)
from ccproxy.prices import PriceTable
from ccproxy.usage import UsageTotals

PRICES = {"gpt-5": {"input": 1.25, "output": 10.0, "cache_read": 0.125}, "glm-*": {"input": 0.6, "output": 2.2}}

# Few values per field, so that runs of records with one label set form and break in every way.
records = st.builds(
    RequestRecord,
    request_id=st.just("req_1"),
    key_id=st.sampled_from([None, "key_a", "key_b"]),
    client_model=st.sampled_from(["", "claude-sonnet-4-5", "claude-haiku-4-5"]),
    backend=st.sampled_from([None, "default", "backup"]),
    upstream_model=st.sampled_from([None, "gpt-5", "glm-4.6", "unpriced-model"]),
    status=st.sampled_from([200, 200, 200, 400, 429, 499, 500, 502]),
    error_type=st.sampled_from([None, None, "overloaded_error", "client_disconnected"]),
    stream=st.booleans(),
    input_tokens=st.integers(0, 200_000),
    output_tokens=st.integers(0, 64_000),
    cache_read_tokens=st.sampled_from([0, 0, 1024, 77_000]),
    cache_write_tokens=st.sampled_from([0, 0, 512]),
    cost_usd=st.sampled_from([None, None, None, 0.0, 0.00123, 1e-9]),
    upstream_cost_usd=st.sampled_from([None, None, 0.0042]),
    ttft_ms=st.one_of(st.none(), st.floats(0.0, 700_000.0)),
    total_ms=st.floats(0.0, 700_000.0),  # across every latency bucket, and past the last
    retries=st.sampled_from([0, 0, 1, 3]),
    fallbacks=st.sampled_from([0, 0, 1]),
    endpoint=st.sampled_from(["messages", "messages", "count_tokens"]),
)
attempts = st.builds(
    UpstreamAttempt,
    request_id=st.just("req_1"),
    backend=st.sampled_from(["default", "backup"]),
    upstream_model=st.just("gpt-5"),
    attempt=st.integers(1, 3),
    status=st.sampled_from([200, 200, 429, 500, None]),
    error=st.sampled_from([None, "connect timeout", "the upstream closed the connection " * 3]),
    ms=st.floats(0.0, 10_000.0),
)
cache_events = st.builds(
    CacheEvent,
    kind=st.sampled_from(["hit", "miss", "store", "error"]),
    cache=st.sampled_from(["responses", "tokens"]),
    backend=st.just(None),
    request_id=st.just("req_1"),
)
breaker_changes = st.builds(
    BreakerChange, backend=st.sampled_from(["default", "backup"]), state=st.sampled_from(["open", "closed"])
)
limiter_waits = st.builds(LimiterWait, backend=st.just("default"), seconds=st.floats(0.0, 5.0))


def copies(items: list[Any]) -> list[Any]:
    return [type(item)(**{name: getattr(item, name) for name in item.__slots__}) for item in items]


def state_of(metrics: ProxyMetrics) -> dict[str, Any]:
    """Everything the endpoints read, NaN-free (none is generated) and compared exactly."""
    return {
        "series": {series.name: dict(series.values) for series in metrics.series},
        "summaries": {
            name: (s.requests, s.errors, list(s.latencies), list(s.recent_errors), list(s.ttfts))
            for name, s in metrics.summaries.items()
        },
    }


@settings(max_examples=150, deadline=None)
@given(
    st.booleans(),
    st.lists(records, max_size=40),
    st.lists(attempts, max_size=20),
    st.lists(cache_events, max_size=3),
    st.lists(breaker_changes, max_size=3),
    st.lists(limiter_waits, max_size=3),
    st.integers(1, 3),
)
def test_metrics_of_a_batch_taken_whole_are_those_of_its_events_one_by_one(
    gated: bool,
    done: list[RequestRecord],
    tried: list[UpstreamAttempt],
    cached: list[CacheEvent],
    changes: list[BreakerChange],
    waits: list[LimiterWait],
    batches: int,
) -> None:
    whole, one_by_one = (GatedProxyMetrics(), GatedProxyMetrics()) if gated else (ProxyMetrics(), ProxyMetrics())
    for part in range(batches):  # several batches: sums carry over from one to the next
        chunk = done[part::batches]
        started = [] if gated else chunk
        kinds: list[list[Any]] = [started, chunk, tried, cached, changes, waits]
        whole.take_batch(EventBatch(*kinds))
        for method, events in zip(EVENT_METHODS, kinds, strict=True):
            for event in events:
                getattr(one_by_one, method)(event)
    assert state_of(whole) == state_of(one_by_one)
    assert whole.summary() | {"uptime_s": 0} == one_by_one.summary() | {"uptime_s": 0}


@settings(max_examples=150, deadline=None)
@given(st.lists(records, max_size=40), st.integers(1, 3))
def test_usage_totals_and_prices_of_a_batch_taken_whole_are_those_of_its_records_one_by_one(
    done: list[RequestRecord], batches: int
) -> None:
    prices = PriceTable.from_options(PRICES, defaults={})
    whole, one_by_one = UsageTotals(wall=lambda: 1_790_000_000.0), UsageTotals(wall=lambda: 1_790_000_000.0)
    priced_whole, priced_one_by_one = copies(done), copies(done)
    for part in range(batches):
        chunk = priced_whole[part::batches]
        Pricing(prices).take_batch(EventBatch([], chunk, [], [], [], []))
        whole.add_all(chunk)
        for record in priced_one_by_one[part::batches]:
            Pricing(prices).request_done(record)
            one_by_one.add(record)
    assert [r.cost_usd for r in priced_whole] == [r.cost_usd for r in priced_one_by_one]
    assert whole.rows == one_by_one.rows
