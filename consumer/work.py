"""A fetched record on its way through the engine: decoded once, keyed for scheduling.

Decoding happens as a record is admitted, so its key (the asset) is known before it
is queued; a record that does not decode carries its error instead of an event and
still gets exactly one outcome.
"""

from __future__ import annotations

from typing import Any

from consumer.errors import RecordError
from consumer.events import decode
from consumer.offsets import PartitionOffsets
from consumer.source import Record, TopicPartition

__all__ = ["Work"]


class Work:
    """A fetched record on its way through the engine."""

    __slots__ = ("decoded", "key", "offsets", "record", "tp")

    def __init__(self, record: Record, tp: TopicPartition, offsets: PartitionOffsets) -> None:
        self.record = record
        self.tp = tp
        # The tracker state it was admitted under: a record finishing after its partition
        # was revoked (and maybe re-assigned) must not touch the new owner's state.
        self.offsets = offsets
        try:
            self.decoded: Any = decode(record.value)
            asset_id = self.decoded.asset_id
        except RecordError as exc:
            self.decoded = exc
            asset_id = None
        # Same asset -> same queue; undecodable records fall back to the record key, then partition.
        self.key: str = asset_id or (
            record.key.decode("utf-8", "replace") if record.key else f"{tp.topic}/{tp.partition}"
        )

    def context(self) -> dict[str, Any]:
        """The fields every log line about this record carries."""
        event = None if isinstance(self.decoded, RecordError) else self.decoded
        return {
            "topic": self.tp.topic,
            "partition": self.tp.partition,
            "offset": self.record.offset,
            "asset_id": event.asset_id if event else None,
            "event_type": event.event_type if event else None,
        }
