"""Where records come from: the ``Source`` contract and its Kafka implementation.

The engine talks only to ``Source``, so one loop iteration runs against an
in-memory source in unit tests and against aiokafka in production.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from consumer.kafka import lenient

__all__ = ["KafkaSource", "Record", "Source", "TopicPartition"]

RebalanceCallback = Callable[[Collection[TopicPartition]], Awaitable[None]]


class Record(Protocol):
    """The fields of a Kafka record the daemon reads (aiokafka's ``ConsumerRecord`` has them)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]:
        """Kafka allows a header without a value (None); a key that is not UTF-8 arrives
        decoded with ``surrogateescape`` (see ``lenient``)."""
        ...


class Source(Protocol):
    async def fetch(
        self, partitions: Collection[TopicPartition], timeout: float, max_records: int
    ) -> dict[TopicPartition, Sequence[Record]]:
        """Up to ``max_records`` records of ``partitions`` only, waiting up to ``timeout``."""
        ...

    def pause(self, partitions: Collection[TopicPartition]) -> None: ...
    def resume(self, partitions: Collection[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self, source: KafkaSource, revoked: RebalanceCallback, assigned: RebalanceCallback
    ) -> None:
        self._source = source
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._revoked(revoked)
        self._source._let_go(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._source._take(assigned)
        await self._assigned(assigned)


class KafkaSource:
    """A ``Source`` over one ``AIOKafkaConsumer`` subscribed to the main and retry topics."""

    def __init__(self, consumer: AIOKafkaConsumer, topics: Sequence[str]) -> None:
        lenient.install()  # one record aiokafka cannot decode must not stop a partition
        self._consumer = consumer
        self._topics = list(topics)
        # Owned from the end of their assignment's callback to the end of their revocation's:
        # aiokafka's ``assignment()`` still lists revoked partitions until the next assignment.
        self._owned: set[TopicPartition] = set()
        # Per owned partition since its assignment: the offset after the last record fetched
        # and the last offset committed (see ``busy``).
        self._fetched: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._busy: set[TopicPartition] = set()  # the partitions the last fetch brought records of

    async def start(self, on_revoked: RebalanceCallback, on_assigned: RebalanceCallback) -> None:
        """Join the group; may be called again after it failed (the broker was down)."""
        listener = _Listener(self, on_revoked, on_assigned)
        self._consumer.subscribe(self._topics, listener=listener)
        await self._consumer.start()

    def _take(self, partitions: Collection[TopicPartition]) -> None:
        self._let_go(partitions)
        self._owned |= set(partitions)

    def _let_go(self, partitions: Collection[TopicPartition]) -> None:
        self._owned -= set(partitions)
        for tp in partitions:
            self._fetched.pop(tp, None)
            self._committed.pop(tp, None)

    async def probe(self) -> None:
        """One round trip to the broker (a metadata request): raises when it cannot answer."""
        await self._consumer.topics()

    async def fetch(
        self, partitions: Collection[TopicPartition], timeout: float, max_records: int
    ) -> dict[TopicPartition, Sequence[Record]]:
        # aiokafka drains its read-ahead one partition at a time: a single getmany hands one
        # partition the whole batch while the others starve. So each partition is asked for
        # its share alone, except that those the last fetch brought nothing of (mostly idle
        # retry tiers) are asked together, for one share, in one call: a getmany costs ~6 µs
        # even when it finds nothing, and one of them that has records is asked alone next.
        groups = [[tp] for tp in partitions if tp in self._busy]
        if not groups:  # nothing known yet: every partition alone
            groups = [[tp] for tp in partitions]
        elif together := [tp for tp in partitions if tp not in self._busy]:
            groups.append(together)
        share, left = max(1, max_records // len(groups)), max_records
        batch: dict[TopicPartition, Sequence[Record]] = {}
        for group in groups:
            if left <= 0:
                break
            got = await self._consumer.getmany(*group, max_records=min(share, left))
            batch.update(got)
            left -= sum(len(records) for records in got.values())
        if not batch:
            batch = await self._consumer.getmany(
                *partitions, timeout_ms=int(timeout * 1000), max_records=max_records
            )
        for tp, records in batch.items():
            if records:
                self._fetched[tp] = max(self._fetched.get(tp, 0), records[-1].offset + 1)
        self._busy = {tp for tp, records in batch.items() if records}
        return batch

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.pause(*partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self._consumer.resume(*partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(partition, offset)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self._consumer.commit(offsets)
        self._committed.update(offsets)

    def owned(self) -> frozenset[TopicPartition]:
        return frozenset(self._owned)

    def partitions(self, topic: str) -> int:
        return len(self._consumer.partitions_for_topic(topic) or ())

    def busy(self) -> set[TopicPartition]:
        """Owned partitions holding a record not yet committed, from what this member
        fetched and committed since it was assigned them: no request, never a false busy
        (a record it has not fetched yet may be missed)."""
        busy = set()
        for tp, fetched in self._fetched.items():
            high = self._consumer.highwater(tp)
            if self._committed.get(tp, -1) < fetched or (high is not None and high > fetched):
                busy.add(tp)
        return busy

    async def lag(self) -> dict[TopicPartition, int]:
        """High-water mark minus position, per owned partition with a known high-water mark."""
        lags: dict[TopicPartition, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is not None:
                # position() waits while an offset is being reset: do not hang on it.
                position = await asyncio.wait_for(self._consumer.position(tp), 1)
                lags[tp] = max(high - position, 0)
        return lags

    async def close(self, timeout: float) -> None:
        """Leave the group; bounded, because a dead broker makes ``stop()`` wait for ever."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._consumer.stop(), timeout)
