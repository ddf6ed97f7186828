"""What a replica reads of the group's work on the real broker: every partition's true
high-water mark and the group's committed offsets, and its own partitions' backlog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.devtools.broker import create_topic
from consumer.devtools.harness import FAST_GROUP
from consumer.kafka.group import GroupOffsets
from consumer.kafka.source import KafkaSource
from tests.support import produce


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


@pytest.fixture
async def group(bootstrap: str, name: str) -> AsyncIterator[GroupOffsets]:
    offsets = GroupOffsets({"bootstrap_servers": bootstrap}, name, [name, f"{name}.retry.1m"])
    yield offsets
    await offsets.close()


async def test_the_high_water_marks_are_true_where_listing_offsets_under_counts(
    bootstrap: str, name: str, group: GroupOffsets
) -> None:
    await create_topic(bootstrap, name, 3)
    await produce(bootstrap, name, [(None, b"x", 0)] * 60)  # one batch: ListOffsets says 1
    await produce(bootstrap, name, [(None, b"y", 1)] * 3)
    await commit(bootstrap, name, {TopicPartition(name, 0): 17})

    first = await group.read()
    await produce(bootstrap, name, [(None, b"z", 0)] * 40)
    second = await group.read()

    assert first == {
        TopicPartition(name, 0): (60, 17),
        TopicPartition(name, 1): (3, None),
        TopicPartition(name, 2): (0, None),
    }
    assert second[TopicPartition(name, 0)] == (100, 17)


async def test_a_topic_created_later_is_read_from_then_on(
    bootstrap: str, name: str, group: GroupOffsets
) -> None:
    await create_topic(bootstrap, name, 1)
    assert set(await group.read()) == {TopicPartition(name, 0)}

    await create_topic(bootstrap, f"{name}.retry.1m", 2)

    assert set(await group.read()) == {
        TopicPartition(name, 0),
        TopicPartition(f"{name}.retry.1m", 0),
        TopicPartition(f"{name}.retry.1m", 1),
    }


@pytest.fixture
async def source(bootstrap: str, name: str) -> AsyncIterator[KafkaSource]:
    await create_topic(bootstrap, name, 2)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **FAST_GROUP,
    )
    source = KafkaSource(consumer, [name])
    assigned = asyncio.Event()

    async def revoked(_: Collection[TopicPartition]) -> None:
        return None

    async def on_assigned(partitions: Collection[TopicPartition]) -> None:
        assert source.owned() >= set(partitions)  # owned while its callback runs
        assigned.set()

    await source.start(revoked, on_assigned)
    await asyncio.wait_for(assigned.wait(), 30)
    yield source
    await source.close(5)


async def test_a_partition_is_busy_from_its_fetch_until_its_commit(
    bootstrap: str, name: str, source: KafkaSource
) -> None:
    tp = TopicPartition(name, 0)
    assert source.owned() == {tp, TopicPartition(name, 1)}
    assert source.busy() == set()
    await produce(bootstrap, name, [(None, b"x", 0)] * 3)

    records = await source.fetch([tp], 5, 10)
    assert source.busy() == {tp}
    await source.commit({tp: records[tp][-1].offset + 1})

    assert source.busy() == set()


async def test_a_partition_with_records_beyond_those_fetched_is_busy(
    bootstrap: str, name: str, source: KafkaSource
) -> None:
    tp = TopicPartition(name, 0)
    await produce(bootstrap, name, [(None, b"x", 0)] * 3)
    records = await source.fetch([tp], 5, 1)  # one of three: the fetch saw the high mark
    await source.commit({tp: records[tp][-1].offset + 1})

    assert source.busy() == {tp}


async def test_a_reading_given_up_on_does_not_give_up_connecting(
    bootstrap: str, name: str, group: GroupOffsets, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts = []

    class Counted(AIOKafkaConsumer):  # type: ignore[misc]
        async def start(self) -> None:
            starts.append(self)
            await super().start()

    monkeypatch.setattr("consumer.kafka.group.AIOKafkaConsumer", Counted)
    await create_topic(bootstrap, name, 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(group.read(), 0.001)  # far less than connecting takes

    assert set(await group.read()) == {TopicPartition(name, 0)}
    assert len(starts) == 1  # the start went on while the reading was given up
