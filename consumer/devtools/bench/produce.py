"""Producing a scenario's records: coverComplete bodies as VOD sends them, keyed by asset."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from consumer.devtools.bench.common import Bench, Topic, say
from consumer.devtools.broker import create_topic

__all__ = ["PARTITIONS", "asset_ids", "produce"]

PARTITIONS = 8


def asset_ids(rng: random.Random, count: int) -> list[str]:
    return [f"{rng.getrandbits(128):032x}" for _ in range(count)]


def produce(bench: Bench, scenario: str, assets: Iterable[str], rng: random.Random) -> Topic:
    name = bench.name(scenario)
    began = time.perf_counter()
    produced = asyncio.run(_produce_async(bench.bootstrap, name, assets, rng))
    seconds = time.perf_counter() - began
    say(f"produced {len(produced):,} records to {name} in {seconds:.1f} s")
    return Topic(name, frozenset(produced))


async def _produce_async(
    bootstrap: str, topic: str, assets: Iterable[str], rng: random.Random
) -> list[tuple[int, int]]:
    await create_topic(bootstrap, topic, PARTITIONS)
    # send() only queues; awaiting the acks in chunks keeps batches full without holding
    # a future per record for the whole topic.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    produced: list[tuple[int, int]] = []
    try:
        pending: list[asyncio.Future[Any]] = []
        for seq, asset_id in enumerate(assets):
            value = _cover_complete(rng, asset_id, seq)
            pending.append(await producer.send(topic, value, key=asset_id.encode()))
            if len(pending) >= 10_000:
                produced.extend(await _acked(pending))
        produced.extend(await _acked(pending))
    finally:
        await producer.stop()
    return produced


async def _acked(pending: list[asyncio.Future[Any]]) -> list[tuple[int, int]]:
    metadata = await asyncio.gather(*pending)
    pending.clear()
    return [(int(m.partition), int(m.offset)) for m in metadata]


def _cover_complete(rng: random.Random, asset_id: str, seq: int) -> bytes:
    """A coverComplete body as VOD sends it (shared/vod/VOD_API.md, section 1)."""
    info: dict[str, Any] = {
        "title": f"upload-{seq:07d}.mp4",
        "asset_id": asset_id,
        "cover_type": "HEAD_FRAME_COVER",
    }
    if rng.random() < 0.9:
        cdn = rng.randint(1, 999)
        url = f"https://{cdn}.cdn-vod.huaweicloud.com/asset/{asset_id}/cover/Cover0.jpg"
        info.update(status="SUCCEED", cover_urls=[{"offset": 0, "url": url}])
    else:
        # The documented failure carries the literal string "null" as its message.
        info.update(status="FAILED", error_code="VOD.10013", error_msg="null")
    return json.dumps({"event_type": "coverComplete", "cover_info": info}).encode()
