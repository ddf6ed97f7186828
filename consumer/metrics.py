"""Prometheus metrics: prefix ``cover_consumer_``, base units, ``_total`` counters.

Never labelled by asset id (unbounded); outcomes by a small set of values,
dead letters by error class (ours or Python's; a handler's own class counts as ``other``),
not by their free-text reason.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
]

BUILD_INFO = Gauge(
    "cover_consumer_build_info", "1, labelled with the running version.", ["version"]
)
RECORDS_CONSUMED = Counter(
    "cover_consumer_records_consumed_total", "Records taken from Kafka for processing.", ["topic"]
)
RECORDS_PROCESSED = Counter(
    "cover_consumer_records_processed_total",
    "Records that reached a final outcome.",
    ["outcome", "handler"],
)
HANDLER_SECONDS = Histogram(
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
