"""consumer.engine.loop.Engine holding retry-tier partitions until their records are due,
and pausing everything while the hold is set.

The wall clock is fake; ``asyncio.timeout`` only bounds a wait so that a broken engine
fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import pytest
import structlog
from aiokafka import TopicPartition

from consumer.config import ConsumerSettings
from consumer.engine.loop import Engine
from consumer.engine.work import Work
from consumer.hold import Hold, Reason
from consumer.kafka.source import Record
from consumer.redelivery.headers import due_at
from consumer.testing import ManualClock
from tests.fakes import FakeSource, cover_event

MAIN = TopicPartition("t", 0)
TIER = TopicPartition("t.retry.1m", 0)
BOUND = 2.0  # seconds: only reached when the engine is broken
START = 1_000.0  # the fake wall clock's start, epoch seconds

T = TypeVar("T")
Coord = tuple[str, int]  # (topic, offset)


async def bounded(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(BOUND):
        return await awaitable


class Processor:
    """The engine's ``process``: records which records were admitted and ran."""

    def __init__(self) -> None:
        self.seen: list[Coord] = []
        self._changed = asyncio.Event()

    async def __call__(self, work: Work) -> None:
        self.seen.append((work.tp.topic, work.record.offset))
        self._changed.set()

    async def wait_for(self, *coords: Coord) -> None:
        while not set(coords) <= set(self.seen):
            self._changed.clear()
            await bounded(self._changed.wait())


def due(topic: str) -> Callable[[Record], float | None] | None:
    """The tier's records are due when their header says; others at once."""
    return (lambda record: due_at(record.headers)) if topic == TIER.topic else None


@dataclasses.dataclass
class Rig:
    engine: Engine
    source: FakeSource
    process: Processor
    clock: ManualClock
    hold: Hold

    def add(self, tp: TopicPartition, asset: str, due: float | None = None) -> None:
        """Append a record; a tier record carries ``cc-due-ms`` like the pipeline writes it."""
        record = self.source.append(tp, cover_event(asset), key=asset.encode())
        if due is not None:
            headers = (("cc-due-ms", str(int(due * 1000)).encode()),)
            self.source.logs[tp][-1] = dataclasses.replace(record, headers=headers)

    async def step(self) -> None:
        """One step that does not wait for the poll timeout: a fetch with nothing to
        return, or a loop with every partition paused, ends at once."""
        self.source.poke()
        self.engine.wake()
        await bounded(self.engine.step())


class MakeRig(Protocol):
    async def __call__(
        self,
        *,
        partitions: Sequence[TopicPartition] = (TIER,),
        max_pending_per_partition: int = 100,
    ) -> Rig: ...


@pytest.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    rigs: list[Rig] = []

    async def make(
        *,
        partitions: Sequence[TopicPartition] = (TIER,),
        max_pending_per_partition: int = 100,
    ) -> Rig:
        settings = ConsumerSettings(
            max_pending_per_partition=max_pending_per_partition,
            poll_timeout=60,  # never reached: steps are poked and woken
            fetch_max_records=100,
        )
        source, process = FakeSource(partitions), Processor()
        clock, hold = ManualClock(wall_start=START), Hold()
        engine = Engine(
            source,
            process,
            settings,
            structlog.get_logger(),
            due=due,
            hold=hold,
            clock=clock,
        )
        await engine.on_assigned(list(partitions))
        rigs.append(rig := Rig(engine, source, process, clock, hold))
        return rig

    yield make
    for rig in rigs:
        await bounded(rig.engine.shutdown(BOUND / 2))


T0, T1, T2, T3 = ((TIER.topic, offset) for offset in range(4))


async def test_a_tier_record_not_yet_due_is_held_back_with_the_records_before_it_admitted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.add(TIER, "a", due=START - 10)
    rig.add(TIER, "b", due=START)  # due exactly now
    rig.add(TIER, "c", due=START + 30)
    rig.add(TIER, "d", due=START + 40)

    await rig.step()
    await rig.process.wait_for(T0, T1)
    await rig.step()

    assert rig.process.seen == [T0, T1]
    assert rig.source.positions[TIER] == 2  # sought back to the record not yet due
    assert rig.source.paused == {TIER}
    assert rig.engine.paused == {TIER}


async def test_a_held_tier_partition_resumes_and_admits_its_record_once_it_is_due(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.add(TIER, "a", due=START - 10)
    rig.add(TIER, "c", due=START + 30)
    rig.add(TIER, "d", due=START + 40)
    await rig.step()
    await rig.process.wait_for(T0)
    await rig.step()
    assert rig.source.paused == {TIER}

    rig.clock.set_wall(START + 30)
    await rig.step()
    await rig.process.wait_for(T1)

    assert rig.process.seen == [T0, T1]
    assert rig.source.positions[TIER] == 2  # the next one, due at +40, is held in turn


async def test_a_held_tier_partition_stays_paused_until_the_due_time(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.add(TIER, "c", due=START + 30)
    await rig.step()
    await rig.step()

    rig.clock.set_wall(START + 29.9)
    await rig.step()

    assert rig.source.paused == {TIER}
    assert rig.process.seen == []


async def test_main_topic_partitions_keep_flowing_while_a_tier_partition_is_held(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(partitions=(MAIN, TIER))
    rig.add(TIER, "c", due=START + 30)
    rig.add(MAIN, "a")
    await rig.step()
    await rig.process.wait_for((MAIN.topic, 0))

    rig.add(MAIN, "b")
    await rig.step()
    await rig.process.wait_for((MAIN.topic, 1))

    assert rig.source.paused == {TIER}
    assert rig.source.fetched_from[-1] == {MAIN}
    assert rig.process.seen == [(MAIN.topic, 0), (MAIN.topic, 1)]


async def test_a_hold_pauses_every_partition_and_admits_nothing(make_rig: MakeRig) -> None:
    rig = await make_rig(partitions=(MAIN, TIER))
    rig.hold.set(Reason.GUARD)
    rig.add(MAIN, "a")
    rig.add(TIER, "b", due=START - 1)

    await rig.step()
    await rig.step()

    assert rig.source.paused == {MAIN, TIER}
    assert rig.engine.paused == {MAIN, TIER}
    assert rig.source.fetched_from == []
    assert rig.process.seen == []
    assert rig.engine.in_flight == 0


async def test_a_released_hold_resumes_every_partition_and_admits_their_records(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(partitions=(MAIN, TIER))
    rig.hold.set(Reason.GUARD)
    rig.add(MAIN, "a")
    rig.add(TIER, "b", due=START - 1)
    await rig.step()

    rig.hold.clear(Reason.GUARD)
    await rig.step()
    await rig.process.wait_for((MAIN.topic, 0), T0)

    assert rig.source.paused == set()
    assert rig.engine.paused == frozenset()


async def test_a_due_record_cut_off_by_the_partition_cap_is_not_held_until_a_later_due_time(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(max_pending_per_partition=2)
    rig.add(TIER, "a", due=START - 30)
    rig.add(TIER, "b", due=START - 20)
    rig.add(TIER, "c", due=START - 10)  # due now, but beyond the room of the first batch
    rig.add(TIER, "d", due=START + 3600)
    await rig.step()
    await rig.process.wait_for(T0, T1)  # both done: the window has room again
    assert rig.source.positions[TIER] == 2

    await rig.step()
    await rig.step()

    assert T2 in rig.process.seen  # due since START - 10, not only at START + 3600


async def test_a_tier_partition_revoked_while_held_is_not_held_once_assigned_again(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.add(TIER, "a", due=START + 30)
    rig.add(TIER, "b", due=START - 10)
    await rig.step()
    await rig.step()
    assert rig.source.paused == {TIER}  # held until START + 30

    await bounded(rig.engine.on_revoked([TIER]))
    rig.source.unassign([TIER])
    rig.source.assign([TIER])
    rig.source.seek(TIER, 1)  # the next owner went past "a"; this one gets the partition back
    await rig.engine.on_assigned([TIER])
    await rig.step()
    await rig.process.wait_for(T1)

    assert rig.process.seen == [T1]
