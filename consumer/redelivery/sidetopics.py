"""Writing a record to a retry tier or to the dead-letter topic, with its history in headers.

The key, value and headers are the record's own, unchanged (``cc-*`` history beside them),
so a later tier or a replay sees exactly what was sent: trace context, tenant headers and
CloudEvents attributes included. What the daemon adds is scrubbed of secrets (a handler's
exception text may quote one).

A dead letter too large to write whole (the producer or broker refuses it, which no
retry changes) is written with the head of its value that fits, the value's full length
and SHA-256 in headers, and a reason that says so. A retry-tier write refused for size
becomes such a dead letter.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import socket
from collections.abc import Callable, Mapping
from typing import Any

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.errors import IgnoredRecord, InvalidRecord, RecordError, TransientError
from consumer.kafka.sink import RecordTooLarge, Sink
from consumer.kafka.source import Record
from consumer.logs import scrub
from consumer.outcomes import DeadLettered, Retried
from consumer.redelivery import headers as h
from consumer.redelivery.guard import DeadLetterGuard
from consumer.redelivery.headers import Trail
from consumer.redelivery.topology import Tier, Topology
from consumer.vod.circuit import CircuitOpen
from consumer.vod.errors import (
    VodPermanentError,
    VodRetryLater,
    VodSystemicError,
    VodThrottled,
    VodTransientError,
)

__all__ = ["SideTopics"]

Headers = list[tuple[str, bytes | None]]

# Room left for the batch and record framing around key, value and headers.
_FRAMING = 1024
# Long enough for any reason worth reading; a header is no place for a megabyte of text.
_MAX_REASON = 2000
_MAX_MEMO = 4096
# When the producer's limit is not the binding one (the broker's is smaller): a head this
# size fits any broker.
_SMALL_HEAD = 65_536


class SideTopics:
    def __init__(
        self,
        sink: Sink,
        topology: Topology,
        guard: DeadLetterGuard,
        group: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._sink = sink
        self._topology = topology
        #: Fed every final outcome by the pipeline; admits (or refuses) each dead letter.
        self.guard = guard
        self._group = group.encode()
        self._host = socket.gethostname().encode()
        self._clock = clock

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._topology.tiers

    async def retry(
        self,
        record: Record,
        trail: Trail,
        tier: Tier,
        step: int,
        attempt: int,
        reason: str,
        handler: str | None = None,
        memo: Mapping[str, Any] | None = None,
    ) -> Retried | DeadLettered:
        due = self._clock.wall() + tier.delay
        history: Headers = [
            *trail.origin_headers(),
            (h.ATTEMPT, str(attempt).encode()),
            (h.STEP, str(step).encode()),
            (h.TIER, str(tier.index).encode()),
            (h.DUE, str(int(due * 1000)).encode()),
            (h.REASON, _text(reason)),
            *_memo(memo),
        ]
        try:
            await self._sink.send(
                tier.topic, record.key, record.value, [*h.carried(record.headers), *history]
            )
        except RecordTooLarge:
            return await self.dead_letter(
                record,
                trail,
                f"{reason}; too large for retry tier {tier.topic}",
                "RecordTooLarge",
                handler,
                attempt,
            )
        metrics.RETRIES.labels(tier.topic).inc()
        return Retried(reason, tier.topic, due)

    async def dead_letter(
        self,
        record: Record,
        trail: Trail,
        reason: str,
        error: str | None,
        handler: str | None,
        attempts: int,
    ) -> DeadLettered:
        await self.guard.admit()
        reason = scrub(reason)

        def history(why: str) -> Headers:
            return [
                *trail.origin_headers(),
                (h.REASON, _text(why)),
                (h.ERROR, _text(error or "")),
                (h.HANDLER, (handler or "").encode()),
                (h.ATTEMPT, str(attempts).encode()),
                (h.LAST_TRIED, str(int(self._clock.wall() * 1000)).encode()),
                (h.GROUP, self._group),
                (h.HOST, self._host),
            ]

        topic, own = self._topology.dead_letter, h.carried(record.headers)
        try:
            await self._sink.send(topic, record.key, record.value, [*own, *history(reason)])
        except RecordTooLarge:
            reason = await self._write_head(topic, record, own, reason, history)
        metrics.DEAD_LETTERS.labels(_error_label(error)).inc()
        return DeadLettered(reason, error)

    async def _write_head(
        self,
        topic: str,
        record: Record,
        own: Headers,
        reason: str,
        history: Callable[[str], Headers],
    ) -> str:
        """Write as much of the value as fits, with its length and digest; return the reason
        the dead letter carries. Raise RecordTooLarge when not even a small head fits."""
        value = record.value or b""
        digest = hashlib.sha256(value).hexdigest().encode()
        attempts = [(own, None), ([], None), ([], _SMALL_HEAD)]  # drop own headers, then shrink
        for kept, cap in attempts:
            room = self._sink.max_request_size - _FRAMING - len(record.key or b"")
            room -= _size(kept) + _size(history(reason)) + 2 * len(digest)
            head = value[: max(0, min(room, cap if cap is not None else room))]
            why = (
                f"{reason} (too large to dead-letter whole: value truncated to {len(head)}"
                f" of {len(value)} bytes{'' if kept else ', own headers dropped'})"
            )
            extra: Headers = [
                (h.VALUE_LENGTH, str(len(value)).encode()),
                (h.VALUE_SHA256, digest),
            ]
            try:
                await self._sink.send(topic, record.key, head, [*kept, *history(why), *extra])
            except RecordTooLarge:
                continue
            return why
        raise RecordTooLarge(f"{topic}: not even {_SMALL_HEAD} bytes of the value fit")


def _memo(memo: Mapping[str, Any] | None) -> Headers:
    """The handlers' memo as a header; none when empty, not JSON-able or over its cap (a
    memo is a hint, VOD's state decides: the handlers cope without it)."""
    if not memo:
        return []
    try:
        text = json.dumps(memo, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        return []
    data = scrub(text).encode()
    return [(h.MEMO, data)] if len(data) <= _MAX_MEMO else []


def _text(value: str) -> bytes:
    return scrub(value)[:_MAX_REASON].encode("utf-8", "replace")


def _size(headers: Headers) -> int:
    return sum(len(key) + len(value or b"") + 8 for key, value in headers)


# The dead-letter counter's label: an error class of ours or of Python's, else "other".
# A handler may raise any class it likes, and each label value is a series kept for ever;
# the dead letter's own header keeps the exact class.
_OUR_ERRORS = (
    InvalidRecord,
    IgnoredRecord,
    RecordError,
    RecordTooLarge,
    TransientError,
    VodPermanentError,
    VodRetryLater,
    VodSystemicError,
    VodThrottled,
    VodTransientError,
    CircuitOpen,
)
_ERROR_LABELS = frozenset(
    {cls.__name__ for cls in _OUR_ERRORS}
    | {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
)


def _error_label(error: str | None) -> str:
    """``error`` (a class name) as a label of the bounded set: ``none``, ours, Python's, or
    ``other``."""
    if error is None:
        return "none"
    return error if error in _ERROR_LABELS else "other"
