"""Operator tools: create the topics (``topics.py``), inspect the dead letters, replay them.

``dlq replay`` writes a marker per replayed dead letter to a compacted topic
(``<dlq>.replays``) right after republishing it, and skips dead letters that
already have one, so running the same replay twice replays nothing the second
time (a crash between the two writes replays one record twice, never none).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaProducer

from consumer.config import Settings
from consumer.kafka.options import client_options
from consumer.kafka.reading import read_topic
from consumer.logs import scrub
from consumer.redelivery import headers as h
from consumer.redelivery.topics import ensure_topics
from consumer.redelivery.topology import Topology

__all__ = ["DeadLetter", "dlq_list", "dlq_replay", "ensure_topics"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    reason: str
    #: The record's own headers (``cc-*`` history dropped): what a replay restores.
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @property
    def coordinates(self) -> str:
        return f"{self.partition}/{self.offset}"


async def dlq_list(settings: Settings, out: TextIO) -> Counter[str]:
    """Count dead letters by reason, with the oldest and newest of each."""
    counts: Counter[str] = Counter()
    span: dict[str, tuple[int, int]] = {}
    async for letter in _dead_letters(settings):
        counts[letter.reason] += 1
        first, last = span.get(letter.reason, (letter.timestamp_ms, letter.timestamp_ms))
        span[letter.reason] = (min(first, letter.timestamp_ms), max(last, letter.timestamp_ms))
    out.write(
        f"{sum(counts.values())} dead letters in {Topology.from_settings(settings).dead_letter}\n"
    )
    if counts:
        out.write(f"{'count':>7}  {'oldest':<20}  {'newest':<20}  reason\n")
    for reason, count in counts.most_common():
        first, last = span[reason]
        out.write(f"{count:>7}  {_iso(first):<20}  {_iso(last):<20}  {scrub(reason)}\n")
    return counts


async def dlq_replay(
    settings: Settings,
    out: TextIO,
    reason: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    dry_run: bool = False,
) -> int:
    """Republish matching dead letters to the main topic, once each; return how many."""
    topology = Topology.from_settings(settings)
    done = await _replayed(settings, topology)
    chosen: list[DeadLetter] = []
    async for letter in _dead_letters(settings):
        if letter.coordinates in done:
            continue
        if reason is not None and reason not in letter.reason:
            continue
        if since is not None and letter.timestamp_ms < since.timestamp() * 1000:
            continue
        chosen.append(letter)
        if limit is not None and len(chosen) >= limit:
            break
    if dry_run:
        for letter in chosen:
            out.write(
                f"would replay partition {letter.partition} offset {letter.offset}: "
                f"{scrub(letter.reason)}\n"
            )
        out.write(f"{len(chosen)} would be replayed ({len(done)} replayed before)\n")
        return len(chosen)
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all")
    await producer.start()
    try:
        for letter in chosen:
            marker = f"{topology.dead_letter}/{letter.coordinates}".encode()
            await producer.send_and_wait(
                topology.main,
                letter.value,
                key=letter.key,
                headers=[*letter.headers, (h.REPLAY_OF, marker)],
            )
            await producer.send_and_wait(
                topology.replays,
                json.dumps({"replayed_at_ms": int(time.time() * 1000)}).encode(),
                key=letter.coordinates.encode(),
            )
    finally:
        await producer.stop()
    out.write(f"{len(chosen)} replayed to {topology.main} ({len(done)} replayed before)\n")
    return len(chosen)


async def _replayed(settings: Settings, topology: Topology) -> set[str]:
    return {
        record.key.decode()
        async for record in read_topic(client_options(settings.kafka), topology.replays)
        if record.key
    }


async def _dead_letters(settings: Settings) -> AsyncIterator[DeadLetter]:
    def letter(record: Any) -> DeadLetter:
        return DeadLetter(
            record.partition,
            record.offset,
            record.timestamp,
            record.key,
            record.value,
            h.header(record.headers, h.REASON) or "(no reason header)",
            tuple(h.carried(record.headers)),
        )

    dead_letter = Topology.from_settings(settings).dead_letter
    async for record in read_topic(client_options(settings.kafka), dead_letter):
        yield letter(record)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
