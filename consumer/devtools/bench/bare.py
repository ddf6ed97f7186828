"""The baseline rows: a bare aiokafka loop doing nothing but ``json.loads`` (the ceiling),
and the same loop doing only the per-record work the product requires (the floor)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from consumer import logs
from consumer.config import LogSettings
from consumer.devtools.bench.common import Bench, BenchError, Topic, timeout
from consumer.devtools.harness import FAST_GROUP
from consumer.events import CoverComplete, decode

__all__ = ["bare_consume", "outcome_logger", "parse"]


def parse(record: ConsumerRecord[bytes, bytes]) -> None:
    json.loads(record.value)


def outcome_logger(path: Path) -> Callable[[ConsumerRecord[bytes, bytes]], None]:
    """Per record what the product asks of any design: decode the event with its pydantic
    model and write one structlog ``record_processed`` line with the fields the daemon's
    line carries, the ``log`` handler's notes on a coverComplete included (status, cover
    type, error code). Nothing of the engine: no scheduling, offsets, routes or metrics."""
    logs.configure(LogSettings(format="json"), stream=path.open("w"))
    log = logs.get_logger()

    def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        began = time.perf_counter()
        event = decode(record.value)
        log.info(
            "record_processed",
            status=event.status,  # the notes first, as on the daemon's line
            cover_type=event.cover_type,
            error_code=event.cover_info.error_code if isinstance(event, CoverComplete) else None,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            asset_id=event.asset_id,
            event_type=event.event_type,
            outcome="done",
            handler="log",
            attempt=1,
            duration_ms=round((time.perf_counter() - began) * 1000, 3),
            reason=None,
        )

    return handle


async def bare_consume(
    bench: Bench,
    topic: Topic,
    scenario: str,
    handle: Callable[[ConsumerRecord[bytes, bytes]], None],
) -> float:
    """Fetch every record and ``handle`` it, nothing else; events/s from the first batch on."""
    expected = len(topic.produced)
    consumer = AIOKafkaConsumer(
        topic.name,
        bootstrap_servers=bench.bootstrap,
        group_id=bench.name(scenario),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        seen, began = 0, 0.0
        deadline = time.monotonic() + timeout(expected)
        while seen < expected:
            if time.monotonic() > deadline:
                raise BenchError(f"baseline saw {seen:,} of {expected:,} records in time")
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if batch and not began:
                began = time.perf_counter()  # joined: the clock starts with the data
            for records in batch.values():
                for record in records:
                    handle(record)
                seen += len(records)
        return seen / (time.perf_counter() - began)
    finally:
        await consumer.stop()
