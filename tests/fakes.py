"""In-memory stand-ins for the test suite: Kafka records, a ``Source``, and VOD event bytes."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from consumer.config import Settings
from consumer.dispatch.intake import prepare
from consumer.engine.offsets import PartitionOffsets
from consumer.engine.work import Work
from consumer.events import Event
from consumer.handlers import Context
from consumer.kafka.sink import RecordTooLarge
from consumer.kafka.source import Record
from consumer.outcomes import DONE, Outcome
from consumer.redelivery.guard import DeadLetterGuard
from consumer.redelivery.sidetopics import SideTopics
from consumer.redelivery.topology import Topology
from consumer.vod.quota import Ask, Share

#: A replica owning the one partition there is: the whole of each VOD quota, for ever.
WHOLE_QUOTA = Ask(
    Share(frozenset({0}), 1, Fraction(1)),
    until=math.inf,
    then=Share(frozenset({0}), 1, Fraction(1)),
)

__all__ = [
    "FakeRecord",
    "FakeSource",
    "cover_event",
    "make_work",
    "smn",
    "some_handler",
    "thumbnail_event",
]


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0
    headers: tuple[tuple[str, bytes | None], ...] = ()


class FakeSource:
    """A ``consumer.source.Source`` over per-partition in-memory logs.

    ``fetch`` returns what is readable at once; with nothing readable it waits for a
    signal (an append, a resume, a seek or :meth:`poke`) for at most ``timeout``, then
    returns whatever is readable, possibly nothing. ``waiting`` is set while it waits,
    so a test knows a step is blocked in its fetch; ``returned`` is set each time a
    fetch returns a batch, even an empty one (a test clears it first).
    """

    def __init__(self, partitions: Iterable[TopicPartition] = ()) -> None:
        self.logs: dict[TopicPartition, list[FakeRecord]] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.committed: dict[TopicPartition, int] = {}
        #: How many of the next commits raise ``CommitFailedError``.
        self.failing_commits = 0
        #: How many of the next fetches raise ``KafkaConnectionError``.
        self.failing_fetches = 0
        #: The partitions each fetch was asked for.
        self.fetched_from: list[frozenset[TopicPartition]] = []
        #: The (timeout, max_records) each fetch was asked with.
        self.fetch_limits: list[tuple[float, int]] = []
        self.waiting = asyncio.Event()
        self.returned = asyncio.Event()
        self._signal = asyncio.Event()
        self._pokes = 0
        self.assign(partitions)

    # -- test controls -----------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned.add(tp)
            self.logs.setdefault(tp, [])
            self.positions.setdefault(tp, 0)

    def unassign(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned.discard(tp)
            self.paused.discard(tp)

    def append(
        self, tp: TopicPartition, value: bytes | None, key: bytes | None = None
    ) -> FakeRecord:
        """Append a record at the next offset of ``tp``'s log."""
        log = self.logs.setdefault(tp, [])
        offset = log[-1].offset + 1 if log else 0
        record = FakeRecord(tp.topic, tp.partition, offset, key, value)
        log.append(record)
        self._signal.set()
        return record

    def poke(self) -> None:
        """Make the pending (or next) fetch return at once, even with nothing to return."""
        if self.waiting.is_set():
            self._signal.set()
        else:
            self._pokes += 1

    # -- the Source protocol -----------------------------------------------------------

    async def fetch(
        self, partitions: Collection[TopicPartition], timeout: float, max_records: int
    ) -> dict[TopicPartition, Sequence[Record]]:
        # aiokafka drops the read-ahead of a paused partition it is asked about.
        assert not set(partitions) & self.paused, "fetch asked for a paused partition"
        self.fetched_from.append(frozenset(partitions))
        self.fetch_limits.append((timeout, max_records))
        batch = await self._fetch(partitions, timeout, max_records)
        self.returned.set()
        return batch

    async def _fetch(
        self, partitions: Collection[TopicPartition], timeout: float, max_records: int
    ) -> dict[TopicPartition, Sequence[Record]]:
        if self.failing_fetches:
            self.failing_fetches -= 1
            raise KafkaConnectionError("broker gone")
        batch = self._take(partitions, max_records)
        if batch:
            return batch
        if self._pokes:
            self._pokes -= 1
            return {}
        self._signal.clear()
        self.waiting.set()
        try:
            await asyncio.wait_for(self._signal.wait(), timeout)
        except TimeoutError:
            return {}
        finally:
            self.waiting.clear()
        return self._take(partitions, max_records)

    def pause(self, partitions: Collection[TopicPartition]) -> None:
        self.paused |= set(partitions)

    def resume(self, partitions: Collection[TopicPartition]) -> None:
        self.paused -= set(partitions)
        self._signal.set()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset
        self._signal.set()

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.failing_commits:
            self.failing_commits -= 1
            raise CommitFailedError("the group rebalanced")
        self.commits.append(dict(offsets))
        self.committed.update(offsets)

    def _take(
        self, partitions: Collection[TopicPartition], max_records: int
    ) -> dict[TopicPartition, Sequence[Record]]:
        # A share of max_records each, as KafkaSource takes them (the Source contract).
        readable = sorted((self.assigned & set(partitions)) - self.paused)
        share, left = max(1, max_records // max(len(readable), 1)), max_records
        batch: dict[TopicPartition, Sequence[Record]] = {}
        for tp in readable:
            if left <= 0:
                break
            records = [r for r in self.logs[tp] if r.offset >= self.positions[tp]]
            records = records[: min(share, left)]
            if records:
                batch[tp] = records
                self.positions[tp] = records[-1].offset + 1
                left -= len(records)
        return batch


# -- VOD event bytes (shapes from VOD_API.md section 1) -----------------------------------


def cover_event(
    asset_id: str, status: str = "FAILED", cover_type: str | None = "HEAD_FRAME_COVER"
) -> bytes:
    info: dict[str, object] = {"asset_id": asset_id, "status": status, "title": "XC1"}
    if cover_type is not None:
        info["cover_type"] = cover_type
    if status.upper() == "FAILED":
        info |= {"error_code": "VOD.10013", "error_msg": "null"}
    else:
        info["cover_urls"] = [{"offset": 0, "url": f"https://cdn.example/{asset_id}/Cover0.jpg"}]
    return json.dumps({"event_type": "coverComplete", "cover_info": info}).encode()


def thumbnail_event(asset_id: str) -> bytes:
    sample = [{"offset": 0, "url": f"https://cdn.example/{asset_id}/snapshot/sample/0.jpg"}]
    info = {"asset_id": asset_id, "status": "SUCCEED", "sample": sample, "dots": []}
    return json.dumps({"event_type": "thumbnailComplete", "thumbnail_info": info}).encode()


def smn(inner: bytes, type: str = "Notification") -> bytes:
    """Wrap ``inner`` (the VOD event JSON) in an SMN envelope, as the HTTP bridge forwards it."""
    envelope = {
        "type": type,
        "message_id": "a1b2c3",
        "topic_urn": "urn:smn:cn-north-4:0a1b2c:vod-events",
        "subject": "vod event",
        "timestamp": "2026-11-21T10:00:00Z",
        "signature_version": "v1",
        "signature": "c2lnbmF0dXJl",
        "signing_cert_url": "https://smn.example/cert.pem",
        "unsubscribe_url": "https://smn.example/unsubscribe",
        "message": inner.decode(),
    }
    return json.dumps(envelope).encode()


# -- handlers that tests resolve by import path or entry point ----------------------------


async def some_handler(event: Event, ctx: Context) -> Outcome:
    return DONE


NOT_CALLABLE = 42


class FakeSink:
    """The ``consumer.kafka.sink.Sink`` contract in memory: every write that fits is
    acknowledged at once; one larger than ``max_request_size`` is refused as the
    producer refuses it."""

    def __init__(self, max_request_size: int = 1_048_576) -> None:
        self.max_request_size = max_request_size
        #: Writes refused for their size.
        self.refused = 0
        self.sent: list[tuple[str, bytes | None, bytes | None, dict[str, str | None]]] = []

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> None:
        size = len(key or b"") + len(value or b"")
        size += sum(len(k.encode()) + len(v or b"") for k, v in headers)
        if size > self.max_request_size:
            self.refused += 1
            raise RecordTooLarge(f"{topic}: {size} bytes")
        decoded = {k: v.decode() if v is not None else None for k, v in headers}
        self.sent.append((topic, key, value, decoded))


def make_work(record: FakeRecord) -> Work:
    """``record`` as the engine admits it: prepared by the dispatch layer's ``prepare``."""
    tp = TopicPartition(record.topic, record.partition)
    return Work(record, tp, PartitionOffsets(), *prepare(record))


def side_topics(
    sink: FakeSink, tiers: Sequence[float] = (60, 600), guard: DeadLetterGuard | None = None
) -> SideTopics:
    """Side topics of main topic ``vod-cover-events`` with the given tier delays."""
    settings = Settings(retry={"tiers": [{"delay": d} for d in tiers]})
    guard = guard or DeadLetterGuard(200, 0.5, 50, on_trip=lambda why: None)
    return SideTopics(sink, Topology.from_settings(settings), guard, "test-group")
