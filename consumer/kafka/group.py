"""The whole group's work as any member can read it from Kafka: every partition's high-water
mark and the group's committed offset, for the partitions it owns and those it does not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.protocol.fetch import FetchRequest

__all__ = ["GroupOffsets"]


class GroupOffsets:
    """Reads on a consumer of its own that never joins the group: on the member's consumer,
    every request would queue behind its fetch, which waits for records up to half a second."""

    def __init__(self, options: dict[str, Any], group_id: str, topics: Sequence[str]) -> None:
        self._options = {**options, "group_id": group_id, "enable_auto_commit": False}
        self._topics = list(topics)
        self._starting: asyncio.Task[AIOKafkaConsumer] | None = None
        self._highs: dict[TopicPartition, int] = {}  # where each high-water mark is read next

    async def read(self) -> dict[TopicPartition, tuple[int, int | None]]:
        """(high-water mark, the group's committed offset or None) of every partition of
        the topics, as Kafka answers now."""
        consumer = await self._started()
        client = consumer._client
        cluster = await client.fetch_all_metadata()  # fresh: a tier topic may have appeared
        tps = [
            TopicPartition(t, p)
            for t in self._topics
            for p in cluster.partitions_for_topic(t) or ()
        ]
        # One request for all partitions; the public ``committed()`` asks for one at a time.
        committed, highs = await asyncio.gather(
            consumer._coordinator.fetch_committed_offsets(tps),
            self._high_water_marks(consumer, cluster, tps),
        )
        return {tp: (highs[tp], committed[tp].offset if tp in committed else None) for tp in tps}

    async def close(self) -> None:
        if self._starting is None:
            return
        self._starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError):
            await (await self._starting).stop()

    async def _started(self) -> AIOKafkaConsumer:
        # Shielded: a reading given up on (it has a deadline) must not give up the start,
        # which may take longer than a reading may.
        starting = self._starting
        if starting is None or _failed(starting):
            self._starting = starting = asyncio.ensure_future(self._start())
        return await asyncio.shield(starting)

    async def _start(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(**self._options)
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _high_water_marks(
        self, consumer: AIOKafkaConsumer, cluster: Any, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        # ListOffsets under-counts on Tansu (the last batch's first offset + 1); a fetch
        # answers the true mark. Each fetch starts at the mark read last, so it carries at
        # most one batch per partition (``max_bytes`` 1), and waits 10 ms when there is none
        # (Tansu answers nothing at all to a fetch that may not wait).
        unknown = [tp for tp in tps if tp not in self._highs]
        if unknown:
            self._highs.update(await consumer.end_offsets(unknown))
        by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
        for tp in tps:
            leader = cluster.leader_for_partition(tp)
            if leader is None or leader < 0:
                raise KafkaError(f"no leader for {tp.topic}/{tp.partition}")
            by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append(
                (tp.partition, self._highs[tp], 1)
            )
        answers = await asyncio.gather(
            *(
                consumer._client.send(leader, FetchRequest(10, 1, 1 << 16, 0, list(topics.items())))
                for leader, topics in by_leader.items()
            )
        )
        highs: dict[TopicPartition, int] = {}
        for answer in answers:
            for topic, partitions in answer.topics:
                for partition, error_code, high, *_ in partitions:
                    tp = TopicPartition(topic, partition)
                    if error_code:  # out of range (truncated): find the end again next time
                        self._highs.pop(tp, None)
                        raise KafkaError(f"fetch error {error_code} on {topic}/{partition}")
                    highs[tp] = self._highs[tp] = high
        if missing := set(tps) - highs.keys():
            raise KafkaError(f"no high-water mark for {sorted(missing)}")
        return highs


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)
