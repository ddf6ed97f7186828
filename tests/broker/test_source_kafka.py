"""The ``Source`` contract against ``KafkaSource`` on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.devtools.broker import create_topic
from consumer.devtools.harness import FAST_GROUP
from consumer.kafka.source import KafkaSource
from tests.contract.source import SourceContract
from tests.support import committed


class KafkaRig:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self._bootstrap, self._topic = bootstrap, topic
        self.partitions = (TopicPartition(topic, 0), TopicPartition(topic, 1))
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=topic,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **FAST_GROUP,
        )
        self.source = KafkaSource(consumer, [topic])
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self._assigned = asyncio.Event()

    async def start(self) -> None:
        async def revoked(_: Collection[TopicPartition]) -> None:
            return None

        async def assigned(partitions: Collection[TopicPartition]) -> None:
            if set(partitions) >= set(self.partitions):
                self._assigned.set()

        await self._producer.start()
        await self.source.start(revoked, assigned)
        await asyncio.wait_for(self._assigned.wait(), 30)

    async def stop(self) -> None:
        await self.source.close(5)
        await self._producer.stop()

    async def append(self, tp: TopicPartition, values: Sequence[bytes]) -> None:
        # One record batch, as a producer under load writes: the broker hands it out whole,
        # so what a fetch brought of a partition stays buffered in the consumer.
        batch = self._producer.create_batch()
        for value in values:
            if batch.append(key=None, value=value, timestamp=None) is None:
                raise AssertionError("the test's records outgrew one batch")
        await (await self._producer.send_batch(batch, tp.topic, partition=tp.partition))

    async def committed(self, tp: TopicPartition) -> int | None:
        offsets = await committed(self._bootstrap, self._topic, self._topic, 2)
        return offsets[tp.partition]


class TestKafkaSource(SourceContract):
    @pytest.fixture
    async def rig(self, bootstrap: str, name: str) -> AsyncIterator[KafkaRig]:
        await create_topic(bootstrap, name, 2)
        rig = KafkaRig(bootstrap, name)
        await rig.start()
        try:
            yield rig
        finally:
            await rig.stop()
