"""Metrics sums and their Prometheus text, in one process and merged from several workers' files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccproxy.default_plugins.metrics import MAX_KEY_SETS, MetricsPlugin, ProxyMetrics, _other_workers, percentiles
from ccproxy.events import BreakerChange, CacheEvent, LimiterWait, RequestRecord, UpstreamAttempt
from ccproxy.metrics import MAX_SERIES, Counter, Histogram, MultiprocessFiles, clean_multiprocess_dir, exposition
from ccproxy.settings import Settings
from ccproxy.worker_files import SUMMARY_FILES, WorkerFile


class Samples(dict[tuple[str, frozenset[tuple[str, str]]], float]):
    """Sample values by (name, labels); looked up with labels in any order."""

    def __getitem__(self, key: tuple[str, tuple[tuple[str, str], ...]]) -> float:  # type: ignore[override]  # any order
        return super().__getitem__((key[0], frozenset(key[1])))

    def get(self, key: tuple[str, tuple[tuple[str, str], ...]], default: float = 0.0) -> float:  # type: ignore[override]  # any order
        return super().get((key[0], frozenset(key[1])), default)


def samples(text: bytes) -> Samples:
    found = Samples()
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value  # type: ignore[index]  # stored raw
    return found


def done(metrics: ProxyMetrics, **kwargs: object) -> RequestRecord:
    record = RequestRecord(request_id="req_1", backend="default", upstream_model="gpt-5", **kwargs)  # type: ignore[arg-type]  # test values
    metrics.request_started(record)
    metrics.request_done(record)
    return record


def test_requests_latency_tokens_cost_and_in_flight_in_one_process() -> None:
    metrics = ProxyMetrics()
    done(metrics, total_ms=120.0, input_tokens=10, output_tokens=5, cost_usd=0.01, key_id="key_1")
    done(metrics, total_ms=30_000.0, stream=True, ttft_ms=300.0, status=200, cache_read_tokens=7, retries=2)
    done(metrics, status=502, error_type="api_error", fallbacks=1)
    metrics.request_started(RequestRecord(request_id="req_open"))
    metrics.upstream_attempt(UpstreamAttempt("req_1", "default", "gpt-5", 1, 429, "rate limited", 5.0))
    metrics.cache_event(CacheEvent("hit", "tokens", None, "req_1"))
    found = samples(exposition(metrics.series, None))
    labels = (("backend", "default"), ("model", "gpt-5"))
    assert found[("ccproxy_requests_total", (*labels, ("endpoint", "messages"), ("status", "200")))] == 2
    assert found[("ccproxy_requests_total", (*labels, ("endpoint", "messages"), ("status", "502")))] == 1
    assert found[("ccproxy_request_duration_seconds_count", labels)] == 3
    assert found[("ccproxy_request_duration_seconds_bucket", (*labels, ("le", "0.25")))] == 2  # 0.12 s and 0 s
    assert found[("ccproxy_request_duration_seconds_sum", labels)] == 30.12
    assert found[("ccproxy_time_to_first_token_seconds_bucket", (*labels, ("le", "0.5")))] == 1
    assert found[("ccproxy_tokens_total", (*labels, ("kind", "input")))] == 10
    assert found[("ccproxy_tokens_total", (*labels, ("kind", "cache_read")))] == 7
    assert found[("ccproxy_cost_usd_total", (*labels, ("key", "key_1")))] == 0.01
    assert found[("ccproxy_retries_total", (("backend", "default"),))] == 2
    assert found[("ccproxy_fallbacks_total", (("backend", "default"),))] == 1
    assert found[("ccproxy_upstream_attempts_total", (("backend", "default"), ("outcome", "429")))] == 1
    assert found[("ccproxy_cache_events_total", (("cache", "tokens"), ("kind", "hit")))] == 1
    assert found[("ccproxy_requests_in_flight", ())] == 1


def test_breaker_changes_and_limiter_waits_feed_their_series() -> None:
    metrics = ProxyMetrics()
    metrics.breaker_change(BreakerChange("openrouter", "open"))
    metrics.limiter_wait(LimiterWait("openrouter", 1.5))
    found = samples(exposition(metrics.series, None))
    assert found[("ccproxy_breaker_state", (("backend", "openrouter"),))] == 1.0
    assert found[("ccproxy_limiter_wait_seconds_total", (("backend", "openrouter"),))] == 1.5
    summary = metrics.summary()
    assert summary["backends"] == {}
    done(metrics)
    metrics.breaker_change(BreakerChange("default", "open"))
    assert metrics.summary()["backends"]["default"]["health"] == "failing"


def test_label_sets_are_capped_so_clients_cannot_grow_them_without_bound() -> None:
    counter = Counter("c", "doc", ("model",))
    histogram = Histogram("h", "doc", ("model",), (1.0,))
    for number in range(MAX_SERIES + 50):
        counter.inc((f"model-{number}",))
        histogram.observe((f"model-{number}",), 0.5)
    assert len(counter.values) == MAX_SERIES + 1 and counter.values[("other",)] == 50
    assert len(histogram.values) == MAX_SERIES + 1 and histogram.values[("other",)][0] == 50


def test_json_summary_percentiles_error_rates_and_health() -> None:
    metrics = ProxyMetrics()
    for ms in range(1, 101):
        done(metrics, total_ms=float(ms))
    for _ in range(10):
        done(metrics, status=502, error_type="api_error", total_ms=5.0)
    summary = metrics.summary()
    assert summary["requests"] == 110 and summary["errors"] == 10
    backend = summary["backends"]["default"]
    assert backend["health"] == "degraded" and backend["recent_error_rate"] == round(10 / 110, 4)
    assert summary["latency_ms"]["samples"] == 110
    assert percentiles([float(n) for n in range(1, 101)])["p99"] == 100.0
    assert percentiles([])["p50"] is None


def test_which_finished_requests_count_as_errors() -> None:
    # Failed: any 5xx, and an answer that started well and ended with an error event (a 200 with an error type).
    # Not failed: a refusal the client caused (4xx), nor a plain answer.
    metrics = ProxyMetrics()
    done(metrics, status=500)
    done(metrics, status=200, error_type="overloaded_error")
    done(metrics, status=429, error_type="rate_limit_error")
    done(metrics, status=200)
    summary = metrics.summary()
    assert summary["requests"] == 4 and summary["errors"] == 2
    assert summary["backends"]["default"]["recent_error_rate"] == 0.5


def test_the_json_summary_of_several_workers_puts_their_parts_together() -> None:
    """GET /v1/metrics with several workers: counts added, percentiles and the recent error rate over every worker's
    recent requests, each backend's breaker at its worst; what is not a snapshot is skipped."""
    mine, theirs = ProxyMetrics(), ProxyMetrics()
    for ms in range(1, 51):
        done(mine, total_ms=float(ms), input_tokens=1, cost_usd=0.5)
    for ms in range(51, 101):
        done(theirs, total_ms=float(ms), output_tokens=2, cost_usd=0.25)
    for _ in range(25):
        done(theirs, status=502, error_type="api_error", total_ms=5.0)
    record = RequestRecord("req_2", backend="other", upstream_model="m", stream=True, ttft_ms=40.0, total_ms=80.0)
    theirs.request_started(record)
    theirs.request_done(record)
    theirs.breaker_change(BreakerChange("default", "open"))
    mine.breaker_change(BreakerChange("default", "closed"))
    theirs.request_started(RequestRecord("req_open"))
    snapshot = json.loads(json.dumps(theirs.snapshot()))  # as another worker's file holds it
    summary = mine.summary([snapshot, {"not": "a snapshot"}, None, [1]], scope="server")
    assert summary["scope"] == "server" and summary["workers"] == 2 and summary["pid"] == os.getpid()
    assert summary["requests"] == 126 and summary["errors"] == 25 and summary["in_flight"] == 1
    assert summary["tokens"] == {"input": 50, "output": 100, "cache_read": 0, "cache_write": 0}
    assert summary["cost_usd"] == 50 * 0.5 + 50 * 0.25
    every = [float(ms) for ms in range(1, 101)] + [5.0] * 25 + [80.0]
    assert summary["latency_ms"] == percentiles(every)
    assert summary["ttft_ms"] == percentiles([40.0])
    default = summary["backends"]["default"]
    assert default["requests"] == 125 and default["recent_error_rate"] == round(25 / 125, 4)
    assert default["breaker"] == "open" and default["health"] == "failing"
    assert summary["backends"]["other"]["requests"] == 1 and summary["backends"]["other"]["health"] == "healthy"
    alone = mine.summary()
    assert alone["scope"] == "process" and "workers" not in alone and alone["requests"] == 50


def test_an_exited_workers_counts_stay_and_what_described_it_live_goes(tmp_path: Path) -> None:
    """As /metrics drops an exited worker's live gauges: its requests still count, its open breaker, its recent
    failures and its in-flight requests no longer say anything about the backend."""
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = ProxyMetrics()
    for _ in range(4):
        done(gone, status=502, error_type="api_error", input_tokens=3)
    gone.breaker_change(BreakerChange("default", "open"))
    gone.request_started(RequestRecord("req_open"))
    WorkerFile(str(tmp_path), SUMMARY_FILES, pid=int(exited.stdout)).write(gone.snapshot())
    running = ProxyMetrics()
    WorkerFile(str(tmp_path), SUMMARY_FILES, pid=os.getpid()).write(running.snapshot())  # a live, idle worker
    mine = ProxyMetrics()
    done(mine, total_ms=10.0)
    summary = mine.summary(_other_workers(WorkerFile(str(tmp_path), SUMMARY_FILES)), scope="server")
    assert summary["workers"] == 2  # this one and the idle one; the exited one is not running
    assert summary["requests"] == 5 and summary["errors"] == 4 and summary["tokens"]["input"] == 12
    assert summary["in_flight"] == 0
    default = summary["backends"]["default"]
    assert default["breaker"] is None and default["health"] == "healthy" and default["latency_ms"]["samples"] == 1


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 1e999, "12", True])
def test_a_snapshot_with_a_count_that_is_not_a_finite_number_is_skipped(bad: Any) -> None:
    theirs = ProxyMetrics()
    done(theirs, total_ms=5.0)
    for where in ("in_flight", "tokens", "requests", "latencies"):
        snapshot = theirs.snapshot()
        if where == "tokens":
            snapshot["tokens"]["input"] = bad
        elif where == "requests":
            snapshot["backends"]["default"]["requests"] = bad
        elif where == "latencies":
            snapshot["backends"]["default"]["latencies"].append(bad)
        else:
            snapshot[where] = bad
        summary = ProxyMetrics().summary([json.loads(json.dumps(snapshot))], scope="server")
        assert summary["requests"] == 0 and summary["workers"] == 1, where


def test_in_flight_from_the_request_gate_is_written_for_the_other_workers_when_it_changes() -> None:
    plugin = MetricsPlugin(Settings(api_key="sk-test"))
    gate = SimpleNamespace(in_flight=3)
    plugin._gauge_in_flight(gate)  # type: ignore[arg-type]  # only in_flight is read
    assert plugin.metrics.dirty and plugin.metrics.in_flight.values[()] == 3.0
    plugin.metrics.dirty = False
    plugin._gauge_in_flight(gate)  # type: ignore[arg-type]
    assert not plugin.metrics.dirty  # unchanged: nothing new to write


def test_workers_files_merge_into_one_set_of_totals(tmp_path: Path) -> None:
    first, second = ProxyMetrics(), ProxyMetrics()
    for _ in range(3):
        done(first, input_tokens=5)
    done(second, input_tokens=5)
    second.request_started(RequestRecord(request_id="req_open"))
    other = MultiprocessFiles(str(tmp_path), pid=os.getpid())
    other.write(second.series)
    other.close()
    # The scraping worker writes its own sums and merges: its own process id must differ from the other's.
    scraper = MultiprocessFiles(str(tmp_path), pid=os.getpid() + 1_000_000)
    found = samples(exposition(first.series, scraper))
    scraper.close()
    labels = (("backend", "default"), ("endpoint", "messages"), ("model", "gpt-5"), ("status", "200"))
    assert found[("ccproxy_requests_total", labels)] == 4
    assert found[("ccproxy_tokens_total", (("backend", "default"), ("kind", "input"), ("model", "gpt-5")))] == 20
    assert found[("ccproxy_request_duration_seconds_count", (("backend", "default"), ("model", "gpt-5")))] == 4
    # The scraper's pid does not exist: its live gauge was dropped, the other worker's in-flight request counts.
    assert found[("ccproxy_requests_in_flight", ())] == 1


def test_a_dead_workers_counters_stay_and_its_live_gauges_go(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    gone = ProxyMetrics()
    done(gone)
    gone.request_started(RequestRecord(request_id="req_open"))
    files = MultiprocessFiles(str(tmp_path), pid=dead_pid)
    files.write(gone.series)
    files.close()
    scraper = MultiprocessFiles(str(tmp_path))
    found = samples(exposition(ProxyMetrics().series, scraper))
    scraper.close()
    assert (
        found[
            (
                "ccproxy_requests_total",
                (("backend", "default"), ("endpoint", "messages"), ("model", "gpt-5"), ("status", "200")),
            )
        ]
        == 1
    )
    assert found.get(("ccproxy_requests_in_flight", ()), 0.0) == 0.0
    clean_multiprocess_dir(str(tmp_path))
    assert list(tmp_path.glob("*.db")) == []


def test_bucket_bounds_are_written_as_prometheus_client_writes_them() -> None:
    from prometheus_client.utils import floatToGoString

    from ccproxy.default_plugins.metrics import LATENCY_BUCKETS, TTFT_BUCKETS
    from ccproxy.metrics import go_float

    assert [go_float(bound) for bound in (*LATENCY_BUCKETS, *TTFT_BUCKETS)] == [
        floatToGoString(bound) for bound in (*LATENCY_BUCKETS, *TTFT_BUCKETS)
    ]


def test_label_sets_past_the_kept_keys_and_the_series_cap_are_still_counted() -> None:
    """Series keys are kept per label set for the next request (MAX_KEY_SETS of them); past that, and past the
    series cap, requests still land in the right series (or "other")."""
    metrics = ProxyMetrics()
    models = MAX_KEY_SETS + 10
    for number in [*range(models), 0]:  # the last one from the kept keys
        record = RequestRecord(request_id="req_1", backend="default", upstream_model=f"m-{number}")
        record.input_tokens, record.total_ms = 2, 10.0
        metrics.request_started(record)
        metrics.request_done(record)
    found = samples(exposition(metrics.series, None))
    first = (("backend", "default"), ("model", "m-0"))
    assert found[("ccproxy_requests_total", (*first, ("status", "200"), ("endpoint", "messages")))] == 2
    assert found[("ccproxy_tokens_total", (*first, ("kind", "input")))] == 4
    requests = metrics.requests.values
    assert len(requests) == MAX_SERIES + 1  # the cap: later models counted as "other"
    assert sum(requests.values()) == models + 1
    assert requests[("other",) * 4] == models - MAX_SERIES
    assert metrics.summary()["backends"]["default"]["requests"] == models + 1


def test_with_a_request_gate_in_flight_comes_from_it_and_no_start_is_queued() -> None:
    from ccproxy.default_plugins.metrics import GatedProxyMetrics, MetricsPlugin
    from ccproxy.http.admission import RequestGate
    from ccproxy.observers import Observers
    from ccproxy.settings import Settings

    plugin = MetricsPlugin(Settings(max_concurrent_requests=4))
    assert isinstance(plugin.metrics, GatedProxyMetrics)
    assert Observers([plugin.metrics]).wants_started is False
    gate = RequestGate(4, 1.0)
    gate.in_flight = 3
    plugin.metrics.request_done(RequestRecord(request_id="req_1"))
    plugin._gauge_in_flight(gate)  # what the endpoints and the file writer do before they read
    found = samples(exposition(plugin.metrics.series, None))
    assert found[("ccproxy_requests_in_flight", ())] == 3  # not -1: request_done leaves the gate's count alone
    assert isinstance(MetricsPlugin(Settings(max_concurrent_requests=0)).metrics, ProxyMetrics)
