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
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


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
    def __init__(self, revoked: RebalanceCallback, assigned: RebalanceCallback) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self._assigned(assigned)


class KafkaSource:
    """A ``Source`` over one ``AIOKafkaConsumer`` subscribed to the main and retry topics."""

    def __init__(self, consumer: AIOKafkaConsumer, topics: Sequence[str]) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._busy: set[TopicPartition] = set()  # the partitions the last fetch brought records of

    async def start(self, on_revoked: RebalanceCallback, on_assigned: RebalanceCallback) -> None:
        self._consumer.subscribe(self._topics, listener=_Listener(on_revoked, on_assigned))
        await self._consumer.start()

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

    def share_of(self, topic: str) -> tuple[int, int]:
        """(partitions of ``topic`` this member owns, partitions it has)."""
        owned = sum(1 for tp in self._consumer.assignment() if tp.topic == topic)
        return owned, len(self._consumer.partitions_for_topic(topic) or ())

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
