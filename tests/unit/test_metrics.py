"""The per-record metrics kept as plain numbers scrape exactly as prometheus_client's own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from consumer import metrics
from consumer.metrics import LoopCounter, LoopHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# On a bound, between bounds, zero, past the last bound, and sums that round in float.
DURATIONS = (0.0, 0.005, 0.0050001, 0.003, 0.1, 0.1, 0.7, 2.5, 299.9, 300.0, 301.5, 1e-7)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both stamp a child's _created with time.time() when it is first labelled.
    monkeypatch.setattr(time, "time", lambda: 1_767_000_000.25)


@pytest.fixture
def created_series_off() -> Iterator[None]:
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        prometheus_client.enable_created_metrics()  # type: ignore[no-untyped-call]


def scrapes(registry: CollectorRegistry) -> tuple[bytes, bytes]:
    return generate_latest(registry), generate_openmetrics(registry)  # type: ignore[no-untyped-call]


def counters() -> tuple[CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopCounter("c_records_total", "Records.", ["outcome", "handler"], registry=ours)
    reference = Counter("c_records_total", "Records.", ["outcome", "handler"], registry=theirs)
    for outcome, handler in [("done", "log"), ("done", "log"), ("skipped", "none"), ("done", "x")]:
        loop.labels(outcome, handler).inc()
        reference.labels(outcome, handler).inc()
    return ours, theirs


def histograms() -> tuple[CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    loop = LoopHistogram("h_seconds", "Calls.", ["handler"], BUCKETS, registry=ours)
    reference = Histogram("h_seconds", "Calls.", ["handler"], buckets=BUCKETS, registry=theirs)
    for index, seconds in enumerate(DURATIONS):
        handler = "log" if index % 3 else "fallback_cover"
        loop.labels(handler).observe(seconds)
        reference.labels(handler).observe(seconds)
    return ours, theirs


def test_a_loop_counter_scrapes_as_a_prometheus_counter() -> None:
    ours, theirs = counters()

    assert scrapes(ours) == scrapes(theirs)
    assert b'c_records_total{handler="log",outcome="done"} 2.0' in generate_latest(ours)


def test_a_loop_histogram_scrapes_as_a_prometheus_histogram() -> None:
    ours, theirs = histograms()

    assert scrapes(ours) == scrapes(theirs)
    assert b'h_seconds_bucket{handler="log",le="0.005"} 2.0' in generate_latest(ours)


@pytest.mark.usefixtures("created_series_off")
def test_both_leave_out_the_created_series_when_prometheus_client_is_told_to() -> None:
    for ours, theirs in (counters(), histograms()):
        assert scrapes(ours) == scrapes(theirs)
        assert b"_created" not in generate_latest(ours)


def test_the_per_record_metrics_are_in_the_default_registry() -> None:
    metrics.RECORDS_PROCESSED.labels("done", "test_metrics", "vod-cover-events").inc()
    metrics.HANDLER_SECONDS.labels("test_metrics").observe(0.02)

    text = generate_latest().decode()

    assert (
        'cover_consumer_records_processed_total{handler="test_metrics",outcome="done",'
        'topic="vod-cover-events"}' in text
    )
    assert (
        'cover_consumer_handler_duration_seconds_bucket{handler="test_metrics",le="0.025"}' in text
    )


def test_unsorted_buckets_are_refused_as_prometheus_client_refuses_them() -> None:
    with pytest.raises(ValueError, match="sorted"):
        LoopHistogram("h_seconds", "Calls.", ["handler"], (1, 0.5), registry=None)
