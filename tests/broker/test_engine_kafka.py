"""The engine in process against the real broker: ordering, concurrency, commit contiguity."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from consumer import DONE, Context, Event, Outcome
from consumer.devtools.broker import create_topic
from consumer.engine.loop import Engine
from consumer.handlers import Handler
from tests.support import (
    committed,
    cover_event,
    in_process,
    produce,
    settings_for,
    until,
)


@asynccontextmanager
async def running(
    bootstrap: str, topic: str, handler: Handler, **consumer: Any
) -> AsyncIterator[Engine]:
    settings = settings_for(bootstrap, topic, "h", consumer=consumer)
    async with in_process(settings, {"h": handler}) as parts:
        yield parts.engine


async def test_same_asset_runs_serially_in_offset_order_while_assets_overlap(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 4)
    # 12 assets x 15 events keyed by asset; asset "x" also lands on every partition explicitly.
    records: list[tuple[bytes | None, bytes, int | None]] = [
        (f"a{i % 12}".encode(), cover_event(f"a{i % 12}", seq=i), None) for i in range(180)
    ]
    records += [(None, cover_event("x", seq=i), i % 4) for i in range(20)]
    await produce(bootstrap, name, records)
    spans: list[tuple[str, int, int, float, float]] = []
    running_now: set[str] = set()
    overlaps: list[str] = []
    peak = 0

    async def handler(event: Event, ctx: Context) -> Outcome:
        nonlocal peak
        asset = event.asset_id or ""
        if asset in running_now:
            overlaps.append(asset)
        running_now.add(asset)
        peak = max(peak, len(running_now))
        began = time.monotonic()
        await asyncio.sleep(0.005)
        running_now.discard(asset)
        spans.append((asset, ctx.record.partition, ctx.record.offset, began, time.monotonic()))
        return DONE

    async with running(bootstrap, name, handler, max_in_flight=64):
        await until(lambda: len(spans) == 200)

    assert overlaps == []
    assert peak > 1, "different assets should run concurrently"
    for asset in {s[0] for s in spans}:
        mine = sorted((s for s in spans if s[0] == asset), key=lambda s: s[3])
        for partition in {s[1] for s in mine}:
            offsets = [s[2] for s in mine if s[1] == partition]
            assert offsets == sorted(offsets), f"{asset} ran out of offset order on {partition}"
        for before, after in itertools.pairwise(mine):
            assert before[4] <= after[3], f"{asset} ran twice at once"


async def test_stalled_record_holds_the_commit_point_but_not_other_assets(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 1)
    values = [cover_event(f"a{i}") for i in range(5)]
    values += [cover_event("stall")]
    values += [cover_event(f"b{i}") for i in range(20)]
    await produce(bootstrap, name, [(None, v, 0) for v in values])
    release = asyncio.Event()
    done: list[int] = []

    async def handler(event: Event, ctx: Context) -> Outcome:
        if event.asset_id == "stall":
            await release.wait()
        done.append(ctx.record.offset)
        return DONE

    async with running(bootstrap, name, handler) as engine:
        await until(lambda: len(done) == 25)
        await engine.commit()
        assert (await committed(bootstrap, name, name, 1))[0] == 5  # the stalled record's offset
        release.set()
        await until(lambda: len(done) == 26)
        await engine.commit()
        assert (await committed(bootstrap, name, name, 1))[0] == 26


async def test_per_partition_cap_pauses_a_stalled_partition_and_others_keep_flowing(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 2)
    await produce(bootstrap, name, [(None, cover_event("stall"), 0)])
    await produce(bootstrap, name, [(None, cover_event(f"p0-{i}"), 0) for i in range(50)])
    await produce(bootstrap, name, [(None, cover_event(f"p1-{i}"), 1) for i in range(200)])
    release = asyncio.Event()
    done: list[tuple[int, int]] = []

    async def handler(event: Event, ctx: Context) -> Outcome:
        if event.asset_id == "stall":
            await release.wait()
        done.append((ctx.record.partition, ctx.record.offset))
        return DONE

    async with running(bootstrap, name, handler, max_pending_per_partition=10) as engine:
        await until(lambda: sum(1 for p, _ in done if p == 1) == 200)
        # Partition 0 stops at its cap: the stalled record plus 9 finished behind it.
        assert sum(1 for p, _ in done if p == 0) == 9
        assert any(tp.partition == 0 for tp in engine.paused)
        release.set()
        await until(lambda: len(done) == 251)


async def test_a_backlog_on_every_partition_is_shared_not_drained_one_by_one(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 4)
    for partition in range(4):
        await produce(
            bootstrap,
            name,
            [(None, cover_event(f"{partition}-{i}"), partition) for i in range(3000)],
        )
    order: list[int] = []

    async def handler(event: Event, ctx: Context) -> Outcome:
        await asyncio.sleep(0.001)
        order.append(ctx.record.partition)
        return DONE

    async with running(bootstrap, name, handler, max_in_flight=64, fetch_max_records=64):
        await until(lambda: len(order) >= 2000)

    # Drained one by one, the first 2,000 would all come from a single partition's read-ahead.
    assert sorted(set(order[:2000])) == [0, 1, 2, 3]
