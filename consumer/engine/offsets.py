"""Per-partition offset tracking: what may be committed is a contiguous done prefix.

Records arrive in offset order per partition and finish in any order. The
commit point only moves past a record once it and every earlier record of its
partition reached a final outcome, so a slow record holds the commit point
(never the processing of other records) and a crash replays at most the
window between the commit point and the fetch position.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import Generic, TypeVar

__all__ = ["OffsetTracker", "PartitionOffsets"]

P = TypeVar("P")


class PartitionOffsets:
    __slots__ = ("_done", "_pending", "committable", "committed")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        #: The next offset to read after the done prefix: what a commit would store.
        self.committable: int | None = None
        #: The last offset acknowledged by the broker for this partition.
        self.committed: int | None = None

    def add(self, offset: int) -> None:
        if self._pending and offset <= self._pending[-1]:
            raise ValueError(f"offset {offset} added out of order after {self._pending[-1]}")
        self._pending.append(offset)

    def complete(self, offset: int) -> None:
        pending, done = self._pending, self._done
        if not pending or offset != pending[0]:
            done.add(offset)  # an earlier record is unfinished: the prefix waits for it
            return
        pending.popleft()
        while pending and pending[0] in done:
            offset = pending.popleft()
            done.discard(offset)
        self.committable = offset + 1

    @property
    def window(self) -> int:
        """Records fetched and not yet committable (finished ones behind a slow one count)."""
        return len(self._pending)


class OffsetTracker(Generic[P]):
    """The offsets of every owned partition, keyed by partition."""

    def __init__(self) -> None:
        self._partitions: dict[P, PartitionOffsets] = {}

    def __contains__(self, partition: P) -> bool:
        return partition in self._partitions

    def __getitem__(self, partition: P) -> PartitionOffsets:
        return self._partitions[partition]

    def partitions(self) -> list[P]:
        return list(self._partitions)

    def assign(self, partition: P) -> PartitionOffsets:
        return self._partitions.setdefault(partition, PartitionOffsets())

    def forget(self, partition: P) -> None:
        self._partitions.pop(partition, None)

    def to_commit(self, partitions: Collection[P] | None = None) -> dict[P, int]:
        """Done prefixes not yet acknowledged (of ``partitions`` only, when given)."""
        return {
            p: state.committable
            for p, state in self._partitions.items()
            if state.committable is not None
            and state.committable != state.committed
            and (partitions is None or p in partitions)
        }

    def mark_committed(self, offsets: dict[P, int]) -> None:
        for p, offset in offsets.items():
            if p in self._partitions:
                self._partitions[p].committed = offset
