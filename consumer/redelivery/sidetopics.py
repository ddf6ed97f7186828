"""Writing a record to a retry tier or to the dead-letter topic, with its history in headers.

The key, value and headers are the record's own, unchanged (``cc-*`` history beside them),
so a later tier or a replay sees exactly what was sent: trace context, tenant headers and
CloudEvents attributes included.
"""

from __future__ import annotations

import socket

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.kafka.sink import Sink
from consumer.kafka.source import Record
from consumer.outcomes import DeadLettered, RecordOutcome, Retried
from consumer.redelivery import headers as h
from consumer.redelivery.guard import DeadLetterGuard
from consumer.redelivery.headers import Trail
from consumer.redelivery.topology import Tier, Topology

__all__ = ["SideTopics"]


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
        self._guard = guard
        self._group = group.encode()
        self._host = socket.gethostname().encode()
        self._clock = clock

    @property
    def tiers(self) -> tuple[Tier, ...]:
        return self._topology.tiers

    def observe(self, outcome: RecordOutcome) -> None:
        """Every final outcome feeds the dead-letter guard's window."""
        self._guard.observe(isinstance(outcome, DeadLettered))

    async def retry(
        self, record: Record, trail: Trail, tier: Tier, step: int, attempt: int, reason: str
    ) -> Retried:
        due = self._clock.wall() + tier.delay
        await self._sink.send(
            tier.topic,
            record.key,
            record.value,
            [
                *h.carried(record.headers),
                *trail.origin_headers(),
                (h.ATTEMPT, str(attempt).encode()),
                (h.STEP, str(step).encode()),
                (h.TIER, str(tier.index).encode()),
                (h.DUE, str(int(due * 1000)).encode()),
                (h.REASON, reason.encode()),
            ],
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
        await self._guard.admit()
        await self._sink.send(
            self._topology.dead_letter,
            record.key,
            record.value,
            [
                *h.carried(record.headers),
                *trail.origin_headers(),
                (h.REASON, reason.encode()),
                (h.ERROR, (error or "").encode()),
                (h.HANDLER, (handler or "").encode()),
                (h.ATTEMPT, str(attempts).encode()),
                (h.LAST_TRIED, str(int(self._clock.wall() * 1000)).encode()),
                (h.GROUP, self._group),
                (h.HOST, self._host),
            ],
        )
        metrics.DEAD_LETTERS.labels(error or "none").inc()
        return DeadLettered(reason, error)
