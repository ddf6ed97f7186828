"""Producing a notification to the topic: ``acks=all``, idempotent where the broker allows,
answered only once acknowledged, within the answer's budget.

A send outlives the request that started it: past the budget the request is answered 503
(the sender retries) while the record may still reach the broker. So each send is kept by
its delivery key (SMN ``message_id``, MFS body digest) until it settles: a retry arriving
meanwhile waits on the same send instead of producing again, and once it succeeded the
key is remembered (:class:`~consumer.ingress.dedup.Seen`): a later retry is a duplicate,
answered 200 and not produced. A broker that never comes back fails the non-idempotent
send after ``kafka.request_timeout_ms``; an idempotent one keeps trying, and the number of
sends waiting is capped (then 503 at once).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    UnknownError,
    UnsupportedVersionError,
)
from structlog.typing import FilteringBoundLogger

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.ingress import metrics
from consumer.ingress.dedup import Seen
from consumer.ingress.refusal import Refused

__all__ = ["Forwarder", "Produced"]

# What a broker answers InitProducerId with when it cannot do idempotence (Tansu's memory
# storage: UnknownError; old brokers: unsupported; no IDEMPOTENT_WRITE: authorization).
_NO_IDEMPOTENCE = (UnknownError, UnsupportedVersionError, ClusterAuthorizationFailedError)


@dataclass(frozen=True, slots=True)
class Produced:
    """Where the record is (None for a duplicate of one produced earlier)."""

    partition: int | None
    offset: int | None
    duplicate: bool


class Forwarder:
    def __init__(
        self,
        options: dict[str, Any],
        topic: str,
        seen: Seen,
        log: FilteringBoundLogger,
        max_pending: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._options = options
        self.topic = topic
        self._seen = seen
        self._log = log
        self._max_pending = max_pending
        self._clock = clock
        self._producer: AIOKafkaProducer | None = None
        self.idempotent = True
        self._pending: dict[str, asyncio.Task[Any]] = {}

    @property
    def started(self) -> bool:
        return self._producer is not None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Connect (idempotent, else plain ``acks=all`` with a warning line); raises
        what a broker out of reach raises, to be tried again."""
        producer = self._new_producer()
        try:
            await producer.start()
        except _NO_IDEMPOTENCE as exc:
            await producer.stop()
            if not self.idempotent:
                raise
            self._log.warning(
                "idempotent_producer_unavailable",
                error=type(exc).__name__,
                action="producing with acks=all, not idempotent: a broker-side retry may "
                "duplicate a record (the consumer tolerates duplicates)",
            )
            self.idempotent = False
            producer = self._new_producer()
            await self._start_or_stop(producer)
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(**self._options, acks="all", enable_idempotence=self.idempotent)

    @staticmethod
    async def _start_or_stop(producer: AIOKafkaProducer) -> None:
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise

    def seen(self, delivery: str) -> bool:
        """Whether ``delivery`` was produced (or otherwise done) within the window."""
        return delivery in self._seen

    def remember(self, delivery: str) -> None:
        """Count ``delivery`` as done (an SMN subscription confirmed, say)."""
        self._seen.add(delivery)

    async def probe(self) -> None:
        """One metadata round trip; raises when the broker does not answer."""
        if self._producer is None:
            raise KafkaError("not connected yet")
        await self._producer.client.fetch_all_metadata()

    async def close(self, timeout: float) -> None:
        """Flush what is pending (up to ``timeout``), then disconnect."""
        if self._producer is None:
            return
        try:
            await asyncio.wait_for(self._producer.stop(), timeout)
        except TimeoutError:
            self._log.warning("producer_close_timeout", seconds=timeout, pending=self.pending)

    async def forward(
        self,
        delivery: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]],
        deadline: float,
    ) -> Produced:
        """Produce once per ``delivery`` key; return once acknowledged, by ``deadline``
        (monotonic), or raise :class:`Refused` (503: retry; 413: never fits)."""
        if delivery in self._seen:
            return Produced(None, None, duplicate=True)
        send = self._pending.get(delivery)
        duplicate = send is not None
        if send is None:
            send = self._start_send(delivery, key, value, headers)
        budget = max(deadline - self._clock.monotonic(), 0.0)
        try:
            metadata = await asyncio.wait_for(asyncio.shield(send), budget)
        except TimeoutError:
            raise Refused(503, "timeout", "the broker did not acknowledge in time; retry") from None
        except (MessageSizeTooLargeError, RecordTooLargeError):
            raise Refused(413, "too_large", "too large for the topic") from None
        except KafkaError as exc:
            raise Refused(
                503, "unavailable", f"the broker refused ({type(exc).__name__}); retry"
            ) from None
        return Produced(int(metadata.partition), int(metadata.offset), duplicate)

    def _start_send(
        self, delivery: str, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> asyncio.Task[Any]:
        if self._producer is None:
            raise Refused(503, "unavailable", "not connected to the broker yet; retry")
        if len(self._pending) >= self._max_pending:
            raise Refused(
                503, "overloaded", f"{len(self._pending)} records wait for the broker; retry"
            )
        send = asyncio.create_task(self._send(self._producer, key, value, list(headers)))
        self._pending[delivery] = send
        send.add_done_callback(functools.partial(self._settled, delivery))
        return send

    async def _send(
        self,
        producer: AIOKafkaProducer,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        began = self._clock.monotonic()
        acknowledged = await producer.send(self.topic, value, key=key, headers=headers)
        metadata = await acknowledged
        metrics.PRODUCE_SECONDS.observe(self._clock.monotonic() - began)
        return metadata

    def _settled(self, delivery: str, send: asyncio.Task[Any]) -> None:
        self._pending.pop(delivery, None)
        if send.cancelled():
            return
        if send.exception() is None:
            self._seen.add(delivery)
