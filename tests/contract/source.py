"""The ``Source`` contract: what the engine relies on from wherever records come from.

One suite, run against the in-memory ``FakeSource`` (tests/unit) and against
``KafkaSource`` on the real broker (tests/broker), so the fake the engine's unit tests use
cannot drift from aiokafka's behaviour. A subclass provides the ``rig`` fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from consumer.kafka.source import Record, Source, TopicPartition

__all__ = ["SourceContract", "SourceRig"]

WAIT = 5.0  # seconds a fetch may take to bring records that are there: generous, never reached


class SourceRig(Protocol):
    """One source with two owned partitions of a fresh topic, and a way to add records."""

    source: Source
    partitions: Sequence[TopicPartition]  # two, both owned by ``source``

    async def append(self, tp: TopicPartition, values: Sequence[bytes]) -> None: ...

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset, as another client of the group would read it."""
        ...


async def fetch_until(
    source: Source, partitions: Sequence[TopicPartition], count: int, max_records: int = 500
) -> dict[TopicPartition, list[Record]]:
    """Fetch from ``partitions`` until ``count`` records came (each fetch capped at
    ``max_records``), or fail after WAIT seconds."""
    got: dict[TopicPartition, list[Record]] = {}
    async with asyncio.timeout(WAIT):
        while sum(len(records) for records in got.values()) < count:
            batch = await source.fetch(partitions, 0.2, max_records)
            for tp, records in batch.items():
                got.setdefault(tp, []).extend(records)
    return got


def values(records: Sequence[Record]) -> list[bytes | None]:
    return [record.value for record in records]


class SourceContract:
    async def test_fetch_brings_each_partitions_records_in_offset_order(
        self, rig: SourceRig
    ) -> None:
        tp0, tp1 = rig.partitions
        await rig.append(tp0, [b"a0", b"a1", b"a2"])
        await rig.append(tp1, [b"b0", b"b1"])

        got = await fetch_until(rig.source, [tp0, tp1], 5)

        assert values(got[tp0]) == [b"a0", b"a1", b"a2"]
        assert values(got[tp1]) == [b"b0", b"b1"]
        assert [r.offset for r in got[tp0]] == [0, 1, 2]
        assert all(r.topic == tp0.topic and r.partition == tp0.partition for r in got[tp0])

    async def test_fetch_never_returns_more_than_max_records(self, rig: SourceRig) -> None:
        tp0, _ = rig.partitions
        await rig.append(tp0, [f"v{i}".encode() for i in range(10)])
        await fetch_until(rig.source, [tp0], 1, max_records=1)  # the data has arrived

        batch = await rig.source.fetch([tp0], 0.2, 3)

        assert sum(len(records) for records in batch.values()) <= 3

    async def test_fetch_takes_records_only_of_the_partitions_asked_for(
        self, rig: SourceRig
    ) -> None:
        tp0, tp1 = rig.partitions
        await rig.append(tp0, [b"a0"])
        await rig.append(tp1, [b"b0"])

        got = await fetch_until(rig.source, [tp1], 1)
        await asyncio.sleep(0.3)  # whatever tp0 might wrongly bring has had time to come
        more = await rig.source.fetch([tp1], 0.2, 500)

        assert set(got) == {tp1}
        assert set(more) <= {tp1}
        assert values((await fetch_until(rig.source, [tp0], 1))[tp0]) == [b"a0"]

    async def test_one_fetch_gives_every_partition_a_share(self, rig: SourceRig) -> None:
        tp0, tp1 = rig.partitions
        await rig.append(tp0, [f"a{i}".encode() for i in range(20)])
        await rig.append(tp1, [f"b{i}".encode() for i in range(20)])
        # One record of each, asked alone: both have arrived and the rest of each is buffered.
        # (Two records asked of both together may both be tp0's while tp1 is still on its way.)
        await fetch_until(rig.source, [tp0], 1, max_records=1)
        await fetch_until(rig.source, [tp1], 1, max_records=1)

        batches = [await rig.source.fetch([tp0, tp1], 0.2, 10) for _ in range(3)]

        assert all(set(batch) == {tp0, tp1} for batch in batches), "one partition took a batch"

    async def test_an_empty_fetch_returns_nothing_once_its_timeout_passed(
        self, rig: SourceRig
    ) -> None:
        tp0, tp1 = rig.partitions
        loop = asyncio.get_running_loop()
        began = loop.time()

        batch = await rig.source.fetch([tp0, tp1], 0.3, 500)

        assert sum(len(records) for records in batch.values()) == 0
        assert 0.2 <= loop.time() - began < WAIT

    async def test_seek_makes_the_next_fetch_start_at_that_offset(self, rig: SourceRig) -> None:
        tp0, _ = rig.partitions
        await rig.append(tp0, [b"a0", b"a1", b"a2", b"a3"])
        await fetch_until(rig.source, [tp0], 4)

        rig.source.seek(tp0, 1)

        assert values((await fetch_until(rig.source, [tp0], 3))[tp0]) == [b"a1", b"a2", b"a3"]

    async def test_a_paused_partition_resumes_where_it_stopped_without_loss_or_repeat(
        self, rig: SourceRig
    ) -> None:
        tp0, tp1 = rig.partitions
        await rig.append(tp0, [b"a0", b"a1"])
        first = await fetch_until(rig.source, [tp0], 2)
        await rig.append(tp0, [b"a2", b"a3"])
        await rig.append(tp1, [b"b0"])

        rig.source.pause([tp0])
        other = await fetch_until(rig.source, [tp1], 1)
        await rig.append(tp0, [b"a4"])
        rig.source.resume([tp0])
        rest = await fetch_until(rig.source, [tp0], 3)

        assert values(first[tp0]) == [b"a0", b"a1"]
        assert values(other[tp1]) == [b"b0"]
        assert values(rest[tp0]) == [b"a2", b"a3", b"a4"]

    async def test_a_commit_stores_the_next_offset_to_read_for_the_group(
        self, rig: SourceRig
    ) -> None:
        tp0, tp1 = rig.partitions
        await rig.append(tp0, [b"a0", b"a1", b"a2"])
        await fetch_until(rig.source, [tp0], 3)

        await rig.source.commit({tp0: 2})

        assert await rig.committed(tp0) == 2
        assert await rig.committed(tp1) is None
