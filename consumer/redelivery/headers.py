"""Kafka headers the daemon writes on retried, dead-lettered and replayed records.

A record keeps its original value bytes and its original headers wherever it goes;
everything the daemon knows about its history travels beside them in ``cc-*`` headers,
a namespace the daemon owns: a record's own ``cc-*`` headers are rewritten on each hop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["OURS", "Trail", "carried", "due_at", "header", "unreadable"]

OURS = "cc-"
# A header key that is not UTF-8 cannot be written back as it was: it travels renamed,
# its bytes in hex in the new name (``cc-invalid-key-fffe``), its value unchanged.
INVALID_KEY = "cc-invalid-key-"

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
MEMO = "cc-memo"  # the handlers' memo (JSON): what they keep about a record between calls
# On a dead letter whose value had to be truncated to fit: the whole value's size and hash.
VALUE_LENGTH = "cc-value-length"
VALUE_SHA256 = "cc-value-sha256"

Headers = Sequence[tuple[str, bytes | None]]


def header(headers: Headers | None, name: str) -> str | None:
    """The first ``name`` header's value as text; None when absent or without a value."""
    for key, value in headers or ():
        if key == name:
            return value.decode("utf-8", "replace") if value is not None else None
    return None


def carried(headers: Headers | None) -> list[tuple[str, bytes | None]]:
    """A record's own headers as they travel on: ours dropped (the caller writes them
    anew), keys that are not UTF-8 renamed so the producer can write them."""
    kept: list[tuple[str, bytes | None]] = []
    for key, value in headers or ():
        if _is_utf8(key):
            if not key.startswith(OURS):
                kept.append((key, value))
        else:
            kept.append((INVALID_KEY + key.encode("utf-8", "surrogateescape").hex(), value))
    return kept


def unreadable(headers: Headers | None) -> str | None:
    """Why these headers cannot be taken as they are, or None: a key that is not UTF-8,
    or one of ours without a value (a ``cc-*`` header is never written empty)."""
    for key, value in headers or ():
        if not _is_utf8(key):
            raw = key.encode("utf-8", "surrogateescape")
            return f"header key is not UTF-8: {raw[:64]!r}"
        if value is None and key.startswith(OURS):
            return f"header {key} has no value"
    return None


def _is_utf8(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Epoch milliseconds have 13 digits until the year 2286; more is no time we wrote.
_MAX_DUE_DIGITS = 15


def due_at(headers: Headers | None, latest: float | None = None) -> float | None:
    """When a record in a retry tier becomes due (epoch seconds), if it says; never later
    than ``latest`` (when it was written plus its tier's delay). A value that is not a
    plain ASCII number reads as due now: a header never stops the loop, nor holds a tier
    partition for ever."""
    value = header(headers, DUE)
    if not value or len(value) > _MAX_DUE_DIGITS or not (value.isascii() and value.isdigit()):
        return None
    due = int(value) / 1000
    return due if latest is None else min(due, latest)


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
    memo: str = ""  # the handlers' memo, as written (JSON)

    @classmethod
    def of(
        cls, topic: str, partition: int, offset: int, timestamp_ms: int, headers: Headers | None
    ) -> Trail:
        """Read from headers when the record carries them (a retry), else start afresh."""
        if not headers or header(headers, ORIGIN_TOPIC) is None:
            return cls(topic, partition, offset, timestamp_ms)
        return cls(
            origin_topic=header(headers, ORIGIN_TOPIC) or topic,
            origin_partition=_int(header(headers, ORIGIN_PARTITION), partition),
            origin_offset=_int(header(headers, ORIGIN_OFFSET), offset),
            first_seen_ms=_int(header(headers, FIRST_SEEN), timestamp_ms),
            # Never below a fresh start: a negative step indexed the route from its end.
            step=max(0, _int(header(headers, STEP), 0)),
            attempt=max(0, _int(header(headers, ATTEMPT), 0)),
            tier=max(-1, _int(header(headers, TIER), -1)),
            memo=header(headers, MEMO) or "",
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
