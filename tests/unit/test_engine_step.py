"""consumer.engine.loop.Engine, one ``step()`` at a time against an in-memory source.

Time is a fake clock; waiting is on asyncio events. ``asyncio.timeout`` only bounds
a wait so that a broken engine fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import pytest
import structlog
from aiokafka import TopicPartition
from structlog.testing import capture_logs
from structlog.typing import EventDict

from consumer.config import ConsumerSettings
from consumer.engine.loop import Engine
from consumer.engine.work import Work
from consumer.hold import Reason
from consumer.testing import ManualClock
from tests.fakes import FakeSource, cover_event

TP0 = TopicPartition("vod-cover-events", 0)
TP1 = TopicPartition("vod-cover-events", 1)
BOUND = 2.0  # seconds: only reached when the engine is broken

Coord = tuple[int, int]  # (partition, offset)
T = TypeVar("T")


async def bounded(awaitable: Awaitable[T]) -> T:
    async with asyncio.timeout(BOUND):
        return await awaitable


class Processor:
    """The engine's ``process``: records what ran; a held record waits until released."""

    def __init__(self) -> None:
        self.started: list[Coord] = []
        self.finished: list[Coord] = []
        self.keys: dict[Coord, Hashable] = {}
        self.running: Counter[Hashable] = Counter()
        self.max_running = 0
        self.max_running_per_key = 0
        self._gates: dict[Coord, asyncio.Event] = {}
        self._started: dict[Coord, asyncio.Event] = {}
        self._finished: dict[Coord, asyncio.Event] = {}
        #: Records whose processing raises once it finished (a pipeline that broke).
        self.raises: set[Coord] = set()

    def hold(self, *coords: Coord) -> None:
        for coord in coords:
            self._gates[coord] = asyncio.Event()

    def release(self, *coords: Coord) -> None:
        for coord in coords:
            self._gates[coord].set()

    def release_all(self) -> None:
        for gate in self._gates.values():
            gate.set()

    async def wait_started(self, *coords: Coord) -> None:
        for coord in coords:
            await bounded(self._started.setdefault(coord, asyncio.Event()).wait())

    async def wait_finished(self, *coords: Coord) -> None:
        for coord in coords:
            await bounded(self._finished.setdefault(coord, asyncio.Event()).wait())

    def order_of(self, key: str) -> list[Coord]:
        return [coord for coord in self.started if self.keys[coord] == key]

    async def __call__(self, work: Work) -> None:
        coord = (work.tp.partition, work.record.offset)
        self.started.append(coord)
        self.keys[coord] = work.key
        self.running[work.key] += 1
        self.max_running = max(self.max_running, sum(self.running.values()))
        self.max_running_per_key = max(self.max_running_per_key, self.running[work.key])
        self._started.setdefault(coord, asyncio.Event()).set()
        try:
            if coord in self._gates:
                await self._gates[coord].wait()
        finally:
            self.running[work.key] -= 1
        self.finished.append(coord)
        self._finished.setdefault(coord, asyncio.Event()).set()
        if coord in self.raises:
            raise RuntimeError("processing failed")


@dataclass
class Rig:
    engine: Engine
    source: FakeSource
    process: Processor
    clock: ManualClock
    logs: list[EventDict]
    #: Commits already made each time the engine asked for the log lines to be written out.
    flushed_before: list[int]

    def add(self, *assets: str, tp: TopicPartition = TP0) -> None:
        for asset in assets:
            self.source.append(tp, cover_event(asset), key=asset.encode())

    async def step(self) -> None:
        await bounded(self.engine.step())

    async def empty_step(self) -> None:
        """A step whose fetch returns nothing: time passes, a commit may fall due."""
        self.source.poke()
        await self.step()

    def start_step(self) -> asyncio.Task[None]:
        """A step expected to block in its fetch until something completes."""
        return asyncio.create_task(self.step())

    def events(self, name: str) -> list[EventDict]:
        return [entry for entry in self.logs if entry["event"] == name]


class MakeRig(Protocol):
    async def __call__(
        self,
        *,
        partitions: Sequence[TopicPartition] = (TP0,),
        max_in_flight: int = 100,
        max_pending_per_partition: int = 100,
        commit_interval: float = 1.0,
        revoke_timeout: float = BOUND,
    ) -> Rig: ...


@pytest.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    rigs: list[Rig] = []
    with capture_logs() as logs:

        async def make(
            *,
            partitions: Sequence[TopicPartition] = (TP0,),
            max_in_flight: int = 100,
            max_pending_per_partition: int = 100,
            commit_interval: float = 1.0,
            revoke_timeout: float = BOUND,
        ) -> Rig:
            settings = ConsumerSettings(
                max_in_flight=max_in_flight,
                max_pending_per_partition=max_pending_per_partition,
                commit_interval=commit_interval,
                revoke_timeout=revoke_timeout,
                poll_timeout=60,  # never reached: steps end on data, pokes and wake-ups
                fetch_max_records=100,
            )
            source, process, clock = FakeSource(partitions), Processor(), ManualClock()
            flushed_before: list[int] = []
            engine = Engine(
                source,
                process,
                settings,
                structlog.get_logger(),
                clock=clock,
                before_commit=lambda: flushed_before.append(len(source.commits)),
            )
            await engine.on_assigned(list(partitions))  # what a rebalance does first
            rigs.append(rig := Rig(engine, source, process, clock, logs, flushed_before))
            return rig

        yield make
        for rig in rigs:
            rig.process.release_all()
            await bounded(rig.engine.shutdown(BOUND / 2))


# -- admission and order -----------------------------------------------------------------


async def test_fetched_records_are_admitted_and_processed(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.add("a", "b", "c")

    await rig.step()
    await rig.process.wait_finished((0, 0), (0, 1), (0, 2))

    assert sorted(rig.process.finished) == [(0, 0), (0, 1), (0, 2)]
    assert rig.engine.in_flight == 0


async def test_records_of_one_asset_run_one_at_a_time_in_offset_order_across_batches(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.process.hold((0, 0))
    rig.add("a", "b", "a")
    await rig.step()
    rig.add("a", "b")
    await rig.step()

    await rig.process.wait_finished((0, 1), (0, 4))  # asset b is not held up by asset a
    assert rig.process.order_of("a") == [(0, 0)]

    rig.process.release((0, 0))
    await rig.process.wait_finished((0, 3))
    assert rig.process.order_of("a") == [(0, 0), (0, 2), (0, 3)]
    assert rig.process.max_running_per_key == 1


# -- flow control ------------------------------------------------------------------------


async def test_never_admits_more_than_max_in_flight_and_leaves_the_rest_at_the_source(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(max_in_flight=3)
    rig.process.hold(*[(0, offset) for offset in range(5)])
    rig.add("a", "b", "c", "d", "e")

    await rig.step()
    await rig.process.wait_started((0, 0), (0, 1), (0, 2))

    assert rig.engine.in_flight == 3
    assert rig.process.started == [(0, 0), (0, 1), (0, 2)]
    assert rig.source.positions[TP0] == 3  # the first record not admitted


async def test_partitions_pause_when_full_and_resume_when_work_drains(make_rig: MakeRig) -> None:
    rig = await make_rig(partitions=(TP0, TP1), max_in_flight=2)
    rig.process.hold((0, 0), (0, 1), (1, 0))
    rig.add("a", "b")
    rig.add("c", tp=TP1)
    await rig.step()
    assert rig.engine.in_flight == 2

    fetches = len(rig.source.fetched_from)
    stepping = rig.start_step()
    await asyncio.sleep(0)  # let the step run up to its wait
    assert rig.source.paused == {TP0, TP1}
    assert rig.engine.paused == {TP0, TP1}
    assert len(rig.source.fetched_from) == fetches  # nothing to fetch from: no fetch
    assert not stepping.done()

    rig.process.release((0, 0))  # room again: wakes the waiting step
    await bounded(stepping)
    await rig.step()
    await rig.process.wait_started((0, 1))

    assert rig.source.paused == set()
    # One fetch takes a share of each partition: (1, 0) came with (0, 0).
    assert rig.process.started == [(0, 0), (1, 0), (0, 1)]
    assert rig.engine.in_flight == 2
    assert rig.process.max_running == 2


async def test_a_pending_fetch_is_replaced_when_a_partition_resumes(make_rig: MakeRig) -> None:
    rig = await make_rig(partitions=(TP0, TP1), max_pending_per_partition=1)
    rig.process.hold((0, 0))
    rig.add("a")
    await rig.step()  # (0, 0) admitted: TP0 is at its cap
    stepping = rig.start_step()
    await bounded(rig.source.waiting.wait())
    assert rig.source.fetched_from[-1] == {TP1}  # the paused TP0 is not asked for

    rig.process.release((0, 0))
    await bounded(stepping)  # woken by the freed room; its fetch is still waiting
    rig.add("b")
    await rig.step()
    await rig.process.wait_started((0, 1))

    assert rig.source.fetched_from[-1] == {TP0, TP1}


async def test_partition_cap_counts_records_finished_behind_a_stalled_one(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(max_pending_per_partition=3)
    rig.process.hold((0, 0))
    rig.add("a", "b", "c", "d", "e")

    await rig.step()
    await rig.process.wait_started((0, 0), (0, 1), (0, 2))
    assert rig.process.started == [(0, 0), (0, 1), (0, 2)]
    assert rig.source.positions[TP0] == 3  # the excess was sought back

    await rig.process.wait_finished((0, 1), (0, 2))
    stepping = rig.start_step()
    await asyncio.sleep(0)  # let the step run up to its wait
    assert rig.source.paused == {TP0}  # window is 3: two done records wait behind (0, 0)
    assert rig.engine.in_flight == 1  # nothing more admitted
    assert rig.source.positions[TP0] == 3

    rig.process.release((0, 0))  # the window drains: wakes the waiting step
    await rig.process.wait_finished((0, 0))
    await bounded(stepping)
    await rig.step()
    await rig.process.wait_started((0, 3), (0, 4))

    assert rig.source.paused == set()
    assert rig.process.started[3:] == [(0, 3), (0, 4)]
    assert rig.source.positions[TP0] == 5


# -- commits -----------------------------------------------------------------------------


async def test_a_stalled_record_holds_the_commit_at_its_own_offset(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.process.hold((0, 1))
    rig.add("a", "b", "c", "d")
    await rig.step()
    await rig.process.wait_finished((0, 0), (0, 2), (0, 3))

    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}]

    rig.process.release((0, 1))
    await rig.process.wait_finished((0, 1))
    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}, {TP0: 4}]
    assert rig.engine.committed() == {TP0: 4}


async def test_log_lines_are_written_out_before_each_commit(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.add("a")
    await rig.step()
    await rig.process.wait_finished((0, 0))
    rig.clock.advance(1)
    await rig.empty_step()
    rig.add("b")
    await rig.step()
    await rig.process.wait_finished((0, 1))
    rig.clock.advance(1)
    await rig.empty_step()

    assert rig.source.commits == [{TP0: 1}, {TP0: 2}]
    assert rig.flushed_before == [0, 1]


async def test_commits_only_once_every_commit_interval(make_rig: MakeRig) -> None:
    rig = await make_rig(commit_interval=1.0)
    rig.add("a")
    await rig.step()
    await rig.process.wait_finished((0, 0))

    rig.clock.advance(0.5)
    await rig.empty_step()
    assert rig.source.commits == []
    rig.clock.advance(0.5)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}]

    rig.add("b")
    await rig.step()
    await rig.process.wait_finished((0, 1))
    rig.clock.advance(0.75)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}]
    rig.clock.advance(0.25)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}, {TP0: 2}]


async def test_nothing_new_done_means_no_commit(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.add("a")
    await rig.step()
    await rig.process.wait_finished((0, 0))
    rig.clock.advance(1)
    await rig.empty_step()

    rig.clock.advance(1)
    await rig.empty_step()

    assert rig.source.commits == [{TP0: 1}]


async def test_a_failed_commit_is_logged_and_retried_at_the_next_interval(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.add("a")
    await rig.step()
    await rig.process.wait_finished((0, 0))
    rig.source.failing_commits = 1

    rig.clock.advance(1)
    await rig.empty_step()
    [failure] = rig.events("commit_failed")
    assert (failure["error"], failure["partitions"], failure["log_level"]) == (
        "CommitFailedError",
        [0],
        "warning",
    )
    await rig.empty_step()  # same time: not retried before the interval
    assert rig.source.commits == []
    assert rig.engine.commits_failing_since == rig.clock.now  # readiness reads it

    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}]
    assert rig.engine.committed() == {TP0: 1}
    assert rig.engine.commits_failing_since is None


async def test_a_failed_fetch_is_logged_and_the_loop_goes_on() -> None:
    source, process = FakeSource([TP0]), Processor()
    settings = ConsumerSettings(poll_timeout=0.01)  # the back-off after a failed fetch
    engine = Engine(source, process, settings, structlog.get_logger())
    await engine.on_assigned([TP0])
    source.failing_fetches = 1
    source.append(TP0, cover_event("a"))

    with capture_logs() as logs:
        await bounded(engine.step())
        await bounded(engine.step())
    await process.wait_finished((0, 0))

    [failure] = [e for e in logs if e["event"] == "fetch_failed"]
    assert failure["error"] == "KafkaConnectionError"
    await bounded(engine.shutdown(BOUND))


# -- rebalance ---------------------------------------------------------------------------


async def test_revoke_drops_waiting_work_waits_for_running_work_and_commits_once(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(partitions=(TP0, TP1))
    rig.process.hold((0, 0))
    rig.add("a", "a", "c")  # (0, 1) waits behind (0, 0): same asset
    rig.add("a", tp=TP1)  # (1, 0) too, but its partition stays
    await rig.step()
    await rig.process.wait_finished((0, 2))

    async def release_running() -> None:
        rig.process.release((0, 0))

    revoking = asyncio.create_task(rig.engine.on_revoked([TP0]))
    releasing = asyncio.create_task(release_running())  # runs once on_revoked waits
    await bounded(revoking)
    await releasing
    rig.source.unassign([TP0])

    assert (0, 1) not in rig.process.started
    [released] = rig.events("record_released")
    assert (released["partition"], released["offset"], released["reason"]) == (
        0,
        1,
        "partition revoked",
    )
    # (0, 0) was waited for; (0, 1) was given up, so the next owner starts there.
    assert rig.source.commits == [{TP0: 1}]
    assert TP0 not in rig.engine.committed()

    await rig.process.wait_finished((1, 0))
    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}, {TP1: 1}]
    assert rig.engine.in_flight == 0


async def test_revoke_with_a_stuck_handler_returns_after_revoke_timeout(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(revoke_timeout=0.05)
    rig.process.hold((0, 1))
    rig.add("a", "b", "c")
    await rig.step()
    await rig.process.wait_finished((0, 0), (0, 2))

    await bounded(rig.engine.on_revoked([TP0]))

    [timeout] = rig.events("revoke_timeout")
    assert (timeout["partitions"], timeout["still_running"]) == (["vod-cover-events/0"], 1)
    assert rig.source.commits == [{TP0: 1}]

    rig.process.release((0, 1))  # finishes after its partition is gone
    await rig.process.wait_finished((0, 1))
    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}]
    assert rig.engine.in_flight == 0


# -- shutdown ----------------------------------------------------------------------------


async def test_shutdown_drains_running_work_then_commits(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.process.hold((0, 0))
    rig.add("a", "b")
    await rig.step()
    await rig.process.wait_finished((0, 1))

    shutting = asyncio.create_task(rig.engine.shutdown(timeout=BOUND))
    rig.process.release((0, 0))

    assert await bounded(shutting) is True
    assert rig.source.commits == [{TP0: 2}]
    assert rig.events("record_released") == []


async def test_shutdown_with_a_stuck_handler_gives_up_within_the_timeout(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.process.hold((0, 1))
    rig.add("a", "b", "c")
    await rig.step()
    await rig.process.wait_finished((0, 0), (0, 2))

    drained = await bounded(rig.engine.shutdown(timeout=0.2))

    assert drained is False
    [released] = rig.events("record_released")
    assert (released["offset"], released["reason"]) == (1, "shutdown timeout")
    assert rig.source.commits == [{TP0: 1}]
    assert rig.engine.in_flight == 0


# -- never a silent ack ------------------------------------------------------------------


async def test_a_record_whose_processing_raises_is_never_committed_and_holds_the_loop(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(partitions=(TP0, TP1))
    rig.process.raises.add((0, 1))  # as if even its dead-letter write failed
    rig.add("a", "b", "c")
    rig.add("d", tp=TP1)
    await rig.step()
    await rig.process.wait_finished((0, 2), (1, 0))
    rig.clock.advance(1)
    await rig.empty_step()

    assert rig.source.commits == [{TP0: 1, TP1: 1}]  # past (1, 0), never past (0, 1)
    [stuck] = rig.events("record_stuck")
    assert (stuck["partition"], stuck["offset"], stuck["log_level"]) == (0, 1, "critical")
    assert Reason.STUCK in rig.engine.hold
    assert rig.source.paused == {TP0, TP1}  # nothing new is taken
