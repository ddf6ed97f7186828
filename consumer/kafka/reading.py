"""Reading a whole topic without a group: the operator tools, the demo and the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.kafka import lenient

__all__ = ["read_topic"]


async def read_topic(options: dict[str, Any], topic: str) -> AsyncIterator[Any]:
    """Every record of ``topic`` from its beginning to its end as of now, without a group
    (operator tools, the demo, tests). ``options``: at least ``bootstrap_servers``."""
    lenient.install()
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    try:
        await consumer.start()  # inside: a failed start is stopped too (no "Unclosed" line)
        if topic not in await consumer.topics():  # also loads the metadata asked for below
            return
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        # ListOffsets under-counts on Tansu (the last batch's first offset + 1), which left
        # the rest of that batch out: ``dlq replay`` never saw those dead letters. A fetch's
        # high-water mark is the true end; taken at the first fetch only, so reading a topic
        # that is being written still ends.
        at_fetch: set[TopicPartition] = set()
        while left:
            batch = await consumer.getmany(*left, timeout_ms=1000)
            for tp, records in batch.items():
                if tp not in at_fetch:
                    at_fetch.add(tp)
                    ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
