"""Prometheus metrics: prefix ``cover_consumer_``, base units, ``_total`` counters.

Never labelled by asset id (unbounded); outcomes by a small set of values,
dead letters by error class (ours or Python's; a handler's own class counts as ``other``),
not by their free-text reason.

The two metrics updated on every record, outcomes and handler durations, are kept as
plain numbers (:class:`LoopCounter`, :class:`LoopHistogram`) and exposed with the very
samples a prometheus_client Counter and Histogram would show.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import accumulate

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import metrics as _client
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import INF, floatToGoString

__all__ = [
    "BUILD_INFO",
    "COMMIT_FAILURES",
    "COVERS_VERIFIED",
    "COVER_VERIFIED_SECONDS",
    "DEAD_LETTERS",
    "DEAD_LETTER_GUARD_TRIPPED",
    "HANDLER_SECONDS",
    "IN_FLIGHT",
    "LAG",
    "LAST_COMMIT",
    "LAST_PROCESSED",
    "PAUSED_PARTITIONS",
    "REBALANCES",
    "RECORDS_CONSUMED",
    "RECORDS_PROCESSED",
    "RECORDS_RELEASED",
    "RETRIES",
    "VOD_BILLED_TASKS",
    "VOD_CIRCUIT_OPEN",
    "VOD_QUOTA_SHARE",
    "VOD_REQUESTS",
    "VOD_SECONDS",
    "VOD_THROTTLED",
    "LoopCounter",
    "LoopHistogram",
]


class LoopCounter:
    """A labelled counter updated from the event loop alone: each child is a plain number.

    prometheus_client takes a lock on every update, and its Histogram walks the buckets in
    Python: for the two per-record metrics that was ~1 µs a record. The daemon updates
    them in its event-loop thread only, where the /metrics handler runs too, so no update
    can interleave with a scrape. A scrape shows what a ``Counter`` would: ``_total`` and
    ``_created`` per child (unless prometheus_client's created series are disabled).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Count] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _Count:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Count()
        return child

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            family.add_metric(values, child.value, child.created if _created_series() else None)
        yield family


class _Count:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()

    def inc(self) -> None:
        self.value += 1


class LoopHistogram:
    """A labelled histogram updated from the event loop alone (see :class:`LoopCounter`):
    each child is a count per bucket and a sum. A scrape shows what a ``Histogram`` would:
    cumulative ``_bucket`` per ``le``, ``_count``, ``_sum`` and ``_created`` per child."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if bounds != sorted(bounds):
            raise ValueError("buckets not in sorted order")
        if not bounds or bounds[-1] != INF:
            bounds.append(INF)
        self._bounds = tuple(bounds)
        self._les: list[str] = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Observations] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> _Observations:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _Observations(self._bounds)
        return child

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._documentation, labels=self._labelnames)
        for values, child in self._children.items():
            buckets = list(zip(self._les, accumulate(child.counts), strict=True))
            family.add_metric(values, buckets, child.sum)
            if _created_series():
                labels = dict(zip(self._labelnames, values, strict=True))
                family.samples.append(Sample(f"{self._name}_created", labels, child.created))
        yield family


class _Observations:
    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # prometheus_client's bucket: the first whose bound is at least ``amount``.
        self.counts[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


def _created_series() -> bool:
    # prometheus_client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, disable_created_metrics).
    return bool(getattr(_client, "_use_created", True))


BUILD_INFO = Gauge(
    "cover_consumer_build_info", "1, labelled with the running version.", ["version"]
)
RECORDS_CONSUMED = Counter(
    "cover_consumer_records_consumed_total", "Records taken from Kafka for processing.", ["topic"]
)
RECORDS_PROCESSED = LoopCounter(
    "cover_consumer_records_processed_total",
    "Records that reached an outcome (retried: to a tier), by the topic they were read from.",
    ["outcome", "handler", "topic"],
)
HANDLER_SECONDS = LoopHistogram(
    "cover_consumer_handler_duration_seconds",
    "Time of one handler call.",
    ["handler"],
    # VOD calls take tens of ms to seconds; a stuck one runs until handler_timeout.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
RECORDS_RELEASED = Counter(
    "cover_consumer_records_released_total",
    "Records given up without an outcome, left to the partition's next owner.",
    ["reason"],
)
IN_FLIGHT = Gauge("cover_consumer_in_flight_records", "Records fetched and not yet finished.")
PAUSED_PARTITIONS = Gauge(
    "cover_consumer_paused_partitions", "Owned partitions not being fetched (bounds, due times)."
)
RETRIES = Counter(
    "cover_consumer_retries_total", "Records written to a delayed-retry tier.", ["tier"]
)
DEAD_LETTERS = Counter(
    "cover_consumer_dead_letters_total", "Records written to the dead-letter topic.", ["error"]
)
REBALANCES = Counter(
    "cover_consumer_rebalances_total", "Partitions assigned or revoked events.", ["change"]
)
LAST_COMMIT = Gauge(
    "cover_consumer_last_commit_timestamp_seconds",
    "When the committed offsets were last current: a commit succeeded or had nothing to do.",
)
COMMIT_FAILURES = Counter("cover_consumer_commit_failures_total", "Offset commits refused.")
LAST_PROCESSED = Gauge(
    "cover_consumer_last_processed_timestamp_seconds", "When a record last reached an outcome."
)
LAG = Gauge(
    "cover_consumer_lag_records",
    "High-water mark minus the consumer's position, per owned partition.",
    ["topic", "partition"],
)
VOD_CIRCUIT_OPEN = Gauge(
    "cover_consumer_vod_circuit_open", "1 while VOD refuses our calls and records are held."
)
DEAD_LETTER_GUARD_TRIPPED = Gauge(
    "cover_consumer_dead_letter_guard_tripped",
    "1 once the dead-letter guard stopped consumption (until restart).",
)
VOD_REQUESTS = Counter(
    "cover_consumer_vod_requests_total",
    "Calls to the VOD API by operation and result (ok, or the error code).",
    ["operation", "result"],
)
VOD_SECONDS = Histogram(
    "cover_consumer_vod_request_duration_seconds", "Time of one VOD call.", ["operation"]
)
VOD_THROTTLED = Counter(
    "cover_consumer_vod_throttled_total", "VOD answers saying the tenant is over its quota."
)
VOD_QUOTA_SHARE = Gauge(
    "cover_consumer_vod_quota_share_calls_per_minute",
    "Calls this replica may make per quota window now: its share of the tenant's VOD "
    "quota, following the work.",
    ["group"],
)
VOD_BILLED_TASKS = Counter(
    "cover_consumer_vod_billed_tasks_total",
    "Snapshot tasks VOD started for the cover handlers (billed by VOD).",
    ["handler"],
)
COVERS_VERIFIED = Counter(
    "cover_consumer_covers_verified_total",
    "Covers set by a handler and then seen in the asset's detail.",
    ["source"],
)
COVER_VERIFIED_SECONDS = Histogram(
    "cover_consumer_cover_verified_seconds",
    "From an event's first sight to its verified cover.",
    ["source"],
    # VOD shows a new cover after 3-5 minutes; retry tiers stretch it to hours.
    buckets=(30, 60, 120, 240, 360, 600, 900, 1800, 3600, 7200, 14400),
)
