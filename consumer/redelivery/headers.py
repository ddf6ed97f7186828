"""Kafka headers the daemon writes on retried, dead-lettered and replayed records.

A record keeps its original value bytes wherever it goes; everything the daemon
knows about its history travels in these headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Trail", "due_at", "header"]

ATTEMPT = "cc-attempt"
STEP = "cc-step"
TIER = "cc-tier"
FIRST_SEEN = "cc-first-seen-ms"
DUE = "cc-due-ms"
LAST_TRIED = "cc-last-tried-ms"
REASON = "cc-reason"
ERROR = "cc-error"
HANDLER = "cc-handler"
ORIGIN_TOPIC = "cc-origin-topic"
ORIGIN_PARTITION = "cc-origin-partition"
ORIGIN_OFFSET = "cc-origin-offset"
GROUP = "cc-group"
HOST = "cc-host"
REPLAY_OF = "cc-replay-of"

Headers = Sequence[tuple[str, bytes]]


def header(headers: Headers | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace")
    return None


def due_at(headers: Headers | None) -> float | None:
    """When a record in a retry tier becomes due (epoch seconds), if it says."""
    value = header(headers, DUE)
    return int(value) / 1000 if value and value.isdigit() else None


class Trail(NamedTuple):
    """A record's history: where it first came from and how far its route got (a tuple:
    one is made per record, and a frozen dataclass costs several times as much)."""

    origin_topic: str
    origin_partition: int
    origin_offset: int
    first_seen_ms: int
    step: int = 0  # the route step to resume at
    attempt: int = 0  # calls of that step so far
    tier: int = -1  # the retry tier it last sat in; -1: none yet

    @classmethod
    def of(
        cls, topic: str, partition: int, offset: int, timestamp_ms: int, headers: Headers | None
    ) -> Trail:
        """Read from headers when the record carries them (a retry), else start afresh."""
        if header(headers, ORIGIN_TOPIC) is None:
            return cls(topic, partition, offset, timestamp_ms)
        return cls(
            origin_topic=header(headers, ORIGIN_TOPIC) or topic,
            origin_partition=_int(header(headers, ORIGIN_PARTITION), partition),
            origin_offset=_int(header(headers, ORIGIN_OFFSET), offset),
            first_seen_ms=_int(header(headers, FIRST_SEEN), timestamp_ms),
            step=_int(header(headers, STEP), 0),
            attempt=_int(header(headers, ATTEMPT), 0),
            tier=_int(header(headers, TIER), -1),
        )

    def origin_headers(self) -> list[tuple[str, bytes]]:
        return [
            (ORIGIN_TOPIC, self.origin_topic.encode()),
            (ORIGIN_PARTITION, str(self.origin_partition).encode()),
            (ORIGIN_OFFSET, str(self.origin_offset).encode()),
            (FIRST_SEEN, str(self.first_seen_ms).encode()),
        ]


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
