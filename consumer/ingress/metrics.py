"""The ingest's Prometheus metrics: prefix ``cover_consumer_ingest_``, labels from fixed
sets (transport ``smn``/``mfs``, a refusal's reason code), never a message id or source."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ANSWER_SECONDS",
    "DUPLICATES",
    "FORWARDED",
    "IN_FLIGHT",
    "PRODUCE_SECONDS",
    "RECEIVED",
    "REJECTED",
    "SUBSCRIPTIONS",
]

RECEIVED = Counter(
    "cover_consumer_ingest_received_total",
    "Notifications received (POST /smn, /mfs).",
    ["transport"],
)
FORWARDED = Counter(
    "cover_consumer_ingest_forwarded_total",
    "Notifications produced to the topic and acknowledged by the broker.",
    ["transport"],
)
REJECTED = Counter(
    "cover_consumer_ingest_rejected_total",
    "Notifications answered with an error, by reason (4xx: refused; 5xx: to be retried).",
    ["transport", "reason"],
)
DUPLICATES = Counter(
    "cover_consumer_ingest_duplicates_total",
    "Deliveries of a notification already produced (or being produced): not produced again.",
    ["transport"],
)
SUBSCRIPTIONS = Counter(
    "cover_consumer_ingest_smn_subscriptions_total",
    "SMN subscription messages by what was done (confirmed, unsubscribed, acknowledged).",
    ["action"],
)
PRODUCE_SECONDS = Histogram(
    "cover_consumer_ingest_produce_duration_seconds",
    "From handing a record to the producer to the broker's acknowledgement.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ANSWER_SECONDS = Histogram(
    "cover_consumer_ingest_answer_duration_seconds",
    "From a request's arrival to its answer.",
    ["transport"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
IN_FLIGHT = Gauge("cover_consumer_ingest_in_flight_requests", "Requests being handled.")
