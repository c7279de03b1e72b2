"""Prometheus metrics kept as plain per-process sums, rendered by prometheus-client on scrape.

Per request only dict additions happen here (a few microseconds); prometheus-client is used where it is good at
it: the text format, and merging the workers' files in multiprocess mode. With several workers each worker writes
its sums into its own files in the prometheus-client multiprocess directory (its format: `counter_<pid>.db`,
`histogram_<pid>.db`, `gauge_livesum_<pid>.db`), once a second and when it stops; a scrape, whichever worker takes
it, writes its own first and then merges every file with `MultiProcessCollector`. So other workers' figures may be
up to a second old; counters of workers that exited stay in the totals, their live gauges are dropped.
"""

from __future__ import annotations

import glob
import os
import re
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Literal

from ccproxy.worker_files import alive

if TYPE_CHECKING:
    from prometheus_client.core import Metric
    from prometheus_client.mmap_dict import MmapedDict

# prometheus-client is imported where it is used (a scrape, a worker's first write), not at start-up: importing it
# costs ~40 ms per worker process.

MAX_SERIES = 2000  # label sets per metric; beyond it new ones are counted under "other" (client-chosen models)
OTHER = "other"
GaugeMode = Literal["livesum", "livemax"]


class Series:
    """One metric's values by label values. Subclasses say how a value is updated and rendered."""

    kind = "untyped"

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.other = (OTHER,) * len(self.labels)

    def _bounded(self, values: dict[tuple[str, ...], object], key: tuple[str, ...]) -> tuple[str, ...]:
        return key if key in values or len(values) < MAX_SERIES else self.other

    def key(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """The key label values `key` are counted under: themselves, or "other" once MAX_SERIES sets exist."""
        return self._bounded(self.values, key)  # type: ignore[attr-defined]  # every series has values


class Counter(Series):
    kind = "counter"

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, documentation, labels)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        values = self.values
        if key not in values:
            key = self._bounded(values, key)  # type: ignore[arg-type]  # float values are objects too
        values[key] = values.get(key, 0.0) + amount

    def family(self) -> Metric:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(key, value)
        return family

    def file_values(self) -> Iterator[tuple[str, str, tuple[str, ...], tuple[str, ...], float]]:
        for key, value in self.values.items():
            yield "counter", self.name + "_total", self.labels, key, value


class Gauge(Series):
    kind = "gauge"

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = (), mode: GaugeMode = "livesum") -> None:
        super().__init__(name, documentation, labels)
        self.mode = mode
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, key: tuple[str, ...], amount: float) -> None:
        self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, key: tuple[str, ...], value: float) -> None:
        self.values[self._bounded(self.values, key)] = value  # type: ignore[arg-type]  # float values are objects

    def family(self) -> Metric:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in self.values.items():
            family.add_metric(key, value)
        return family

    def file_values(self) -> Iterator[tuple[str, str, tuple[str, ...], tuple[str, ...], float]]:
        for key, value in self.values.items():
            yield "gauge_" + self.mode, self.name, self.labels, key, value


class Histogram(Series):
    """Counts per bucket (not cumulative) and the sum, per label set."""

    kind = "histogram"

    def __init__(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labels)
        self.bounds = tuple(sorted(buckets))
        self.bound_texts = (*(go_float(bound) for bound in self.bounds), "+Inf")
        # label values -> [count per bucket..., count above the last bound, sum]
        self.values: dict[tuple[str, ...], list[float]] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        counts = self.values.get(key) or self._new_counts(key)
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def observe_all(self, key: tuple[str, ...], values: Iterable[float]) -> None:
        """`observe` for each of `values` (the same counts and, in the same order, the same sum), bucketed in C."""
        counts = self.values.get(key) or self._new_counts(key)
        values = list(values)
        if not values:
            return
        bounds = self.bounds
        lowest = bisect_left(bounds, min(values))
        if lowest == bisect_left(bounds, max(values)):  # all in one bucket: the usual case for a batch
            counts[lowest] += len(values)
        else:
            for index, count in Tally(map(bisect_left, repeat(bounds), values)).items():
                counts[index] += count
        counts[-1] = sum(values, counts[-1])

    def _new_counts(self, key: tuple[str, ...]) -> list[float]:
        """The counts of a label set seen for the first time (or of "other", once MAX_SERIES sets exist)."""
        key = self._bounded(self.values, key)  # type: ignore[arg-type]  # lists are objects
        counts = self.values.get(key)
        if counts is None:
            counts = self.values[key] = [0.0] * (len(self.bounds) + 2)
        return counts

    def family(self) -> Metric:
        from prometheus_client.core import HistogramMetricFamily

        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, counts in self.values.items():
            cumulative, buckets = 0.0, []
            for text, count in zip(self.bound_texts, counts, strict=False):
                cumulative += count
                buckets.append((text, cumulative))
            family.add_metric(key, buckets, sum_value=counts[-1])
        return family

    def file_values(self) -> Iterator[tuple[str, str, tuple[str, ...], tuple[str, ...], float]]:
        labels = (*self.labels, "le")
        for key, counts in self.values.items():
            for text, count in zip(self.bound_texts, counts, strict=False):
                yield "histogram", self.name + "_bucket", labels, (*key, text), count
            yield "histogram", self.name + "_sum", self.labels, key, counts[-1]


AnySeries = Counter | Gauge | Histogram


def go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it (prometheus-client's floatToGoString for bounds below 1e6)."""
    return repr(float(value))


class LiveCollector:
    """prometheus-client collector over this process's series (single-process serving)."""

    def __init__(self, series: Iterable[AnySeries]) -> None:
        self.series = tuple(series)

    def collect(self) -> Iterator[Metric]:
        for metric in self.series:
            yield metric.family()


class MultiprocessFiles:
    """This process's series written into prometheus-client multiprocess files under `path`."""

    def __init__(self, path: str, pid: int | None = None) -> None:
        self.path = path
        self.pid = os.getpid() if pid is None else pid
        self._files: dict[str, MmapedDict] = {}

    def write(self, series: Iterable[AnySeries]) -> None:
        from prometheus_client.mmap_dict import mmap_key

        for metric in series:
            for kind, sample, labels, values, value in metric.file_values():
                key = mmap_key(metric.name, sample, list(labels), list(values), metric.documentation)
                self._file(kind).write_value(key, value, 0.0)

    def _file(self, kind: str) -> MmapedDict:
        from prometheus_client.mmap_dict import MmapedDict

        found = self._files.get(kind)
        if found is None:
            found = self._files[kind] = MmapedDict(os.path.join(self.path, f"{kind}_{self.pid}.db"))
        return found

    def close(self, *, dead: bool = False) -> None:
        """Close the files; `dead`: also drop this process's live gauges (its counters stay in the totals)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        if dead:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(self.pid, self.path)


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def mark_dead_workers(path: str) -> None:
    """Drop the live gauges of processes that no longer exist (a worker Sanic replaced)."""
    from prometheus_client.multiprocess import mark_process_dead

    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_FILE.search(name)
        if match is not None and not alive(int(match.group(1))):
            mark_process_dead(int(match.group(1)), path)


def clean_multiprocess_dir(path: str) -> None:
    """Remove files a previous run left (prometheus-client's rule: the directory is emptied before workers start)."""
    for name in glob.glob(os.path.join(path, "*.db")):
        os.remove(name)


def exposition(series: Sequence[AnySeries], files: MultiprocessFiles | None) -> bytes:
    """The Prometheus text: this process's series, or every worker's when serving with several."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    if files is None:
        registry.register(LiveCollector(series))
    else:
        files.write(series)
        mark_dead_workers(files.path)
        MultiProcessCollector(registry, path=files.path)
    return generate_latest(registry)
