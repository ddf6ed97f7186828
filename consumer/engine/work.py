"""A fetched record on its way through the engine, with what ``prepare`` made of it.

The engine knows nothing of what a record holds: an injected ``prepare`` turns it into a
scheduling key and a payload once, as it is admitted (the dispatch layer decodes the VOD
event there), so the key is known before the record is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from consumer.engine.offsets import PartitionOffsets
from consumer.kafka.source import Record, TopicPartition

__all__ = ["Prepare", "Work"]

#: ``record -> (key, payload)``; a key of None falls back to the record key, then the partition.
Prepare = Callable[[Record], tuple[Hashable | None, Any]]


class Work:
    """A fetched record on its way through the engine."""

    __slots__ = ("key", "offsets", "payload", "record", "tp")

    def __init__(
        self,
        record: Record,
        tp: TopicPartition,
        offsets: PartitionOffsets,
        key: Hashable | None,
        payload: Any,
    ) -> None:
        self.record = record
        self.tp = tp
        # The tracker state it was admitted under: a record finishing after its partition
        # was revoked (and maybe re-assigned) must not touch the new owner's state.
        self.offsets = offsets
        self.payload = payload
        # Same key -> same queue, one at a time, in offset order.
        self.key: Hashable = key or (
            record.key.decode("utf-8", "replace") if record.key else f"{tp.topic}/{tp.partition}"
        )

    def coordinates(self) -> dict[str, Any]:
        """Where the record is: the fields every line about it carries."""
        return {
            "topic": self.tp.topic,
            "partition": self.tp.partition,
            "offset": self.record.offset,
        }
