"""consumer.engine.loop.Engine, one ``step()`` at a time against an in-memory source.

Time is a fake clock; waiting is on asyncio events. ``asyncio.timeout`` only bounds
a wait so that a broken engine fails the test instead of hanging it. Tests of what the
engine bounds by asyncio's own clock (poll, revoke and shutdown timeouts) run on a
virtual-time loop (``tests.virtual_time``): they measure those times exactly, instantly.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pytest
import structlog
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from prometheus_client import REGISTRY
from structlog.testing import capture_logs
from structlog.typing import EventDict

from consumer import metrics
from consumer.config import ConsumerSettings
from consumer.engine.loop import Engine
from consumer.engine.work import Prepare, Work
from consumer.hold import Reason
from consumer.kafka.source import Record
from consumer.testing import ManualClock
from tests.fakes import FakeSource, cover_event
from tests.virtual_time import virtual_time

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
        self._raising: dict[Coord, BaseException] = {}
        self._started: dict[Coord, asyncio.Event] = {}
        self._finished: dict[Coord, asyncio.Event] = {}

    def hold(self, *coords: Coord) -> None:
        for coord in coords:
            self._gates[coord] = asyncio.Event()

    def fail(self, *coords: Coord, error: BaseException | None = None) -> None:
        """Processing these records raises ``error`` (once started, not finished)."""
        for coord in coords:
            self._raising[coord] = error or RuntimeError(f"processing {coord} failed")

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
            if coord in self._raising:
                raise self._raising[coord]
        finally:
            self.running[work.key] -= 1
        self.finished.append(coord)
        self._finished.setdefault(coord, asyncio.Event()).set()


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

    async def close(self) -> None:
        self.process.release_all()
        await bounded(self.engine.shutdown(BOUND / 2))


class MakeRig(Protocol):
    async def __call__(
        self,
        *,
        partitions: Sequence[TopicPartition] = (TP0,),
        max_in_flight: int = 100,
        max_pending_per_partition: int = 100,
        commit_interval: float = 1.0,
        revoke_timeout: float = BOUND,
        poll_timeout: float = 60,
        commit_timeout: float = 30.0,
        source: FakeSource | None = None,
        prepare: Prepare = ...,
        describe: Callable[[Any], Mapping[str, Any]] = ...,
    ) -> Rig: ...


async def build_rig(
    logs: list[EventDict],
    *,
    partitions: Sequence[TopicPartition] = (TP0,),
    max_in_flight: int = 100,
    max_pending_per_partition: int = 100,
    commit_interval: float = 1.0,
    revoke_timeout: float = BOUND,
    poll_timeout: float = 60,  # never reached: steps end on data, pokes and wake-ups
    commit_timeout: float = 30.0,
    source: FakeSource | None = None,
    prepare: Prepare = lambda record: (None, None),
    describe: Callable[[Any], Mapping[str, Any]] = lambda payload: {},
) -> Rig:
    """An engine over ``source`` (a fresh ``FakeSource`` by default), its partitions assigned."""
    settings = ConsumerSettings(
        max_in_flight=max_in_flight,
        max_pending_per_partition=max_pending_per_partition,
        commit_interval=commit_interval,
        revoke_timeout=revoke_timeout,
        poll_timeout=poll_timeout,
        fetch_max_records=100,
    )
    source = source if source is not None else FakeSource(partitions)
    process, clock = Processor(), ManualClock()
    flushed_before: list[int] = []
    engine = Engine(
        source,
        process,
        settings,
        structlog.get_logger(),
        prepare=prepare,
        describe=describe,
        clock=clock,
        before_commit=lambda: flushed_before.append(len(source.commits)),
        commit_timeout=commit_timeout,
    )
    await engine.on_assigned(list(partitions))  # what a rebalance does first
    return Rig(engine, source, process, clock, logs, flushed_before)


@pytest.fixture
async def make_rig() -> AsyncIterator[MakeRig]:
    rigs: list[Rig] = []
    with capture_logs() as logs:

        async def make(**options: Any) -> Rig:
            rigs.append(rig := await build_rig(logs, **options))
            return rig

        yield make
        for rig in rigs:
            await rig.close()


@asynccontextmanager
async def rig_for(**options: Any) -> AsyncIterator[Rig]:
    """A rig for one test that builds it itself (on a virtual-time loop, say)."""
    with capture_logs() as logs:
        rig = await build_rig(logs, **options)
        try:
            yield rig
        finally:
            await rig.close()


def elapsed_since(began: float) -> float:
    return asyncio.get_running_loop().time() - began


def now() -> float:
    return asyncio.get_running_loop().time()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class SlowSource(FakeSource):
    """Its fetches wait for records well past the poll timeout, as a slow broker's may."""

    async def fetch(
        self, partitions: Collection[TopicPartition], timeout: float, max_records: int
    ) -> dict[TopicPartition, Sequence[Record]]:
        return await super().fetch(partitions, timeout * 10, max_records)


class SilentBroker(FakeSource):
    """A broker that never answers a commit."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.Event().wait()


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


async def test_run_steps_until_asked_to_stop(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.add("a", "b")
    running = asyncio.create_task(rig.engine.run())

    await rig.process.wait_finished((0, 0), (0, 1))
    rig.engine.request_stop()  # also wakes the step waiting in its fetch

    await bounded(running)
    assert sorted(rig.process.finished) == [(0, 0), (0, 1)]


async def test_prepare_keys_each_record_as_it_is_admitted(make_rig: MakeRig) -> None:
    rig = await make_rig(prepare=lambda record: (f"asset-{record.offset % 2}", None))
    rig.add("a", "b", "c")

    await rig.step()
    await rig.process.wait_finished((0, 0), (0, 1), (0, 2))

    assert rig.process.keys == {(0, 0): "asset-0", (0, 1): "asset-1", (0, 2): "asset-0"}


async def test_the_heartbeat_is_the_clock_time_the_last_step_ended(make_rig: MakeRig) -> None:
    rig = await make_rig()
    assert rig.engine.last_step == 0.0  # the clock's time when the engine was made

    rig.clock.advance(5)
    await rig.empty_step()

    assert rig.engine.last_step == 5.0


async def test_records_consumed_counts_the_admitted_records_not_those_sought_back(
    make_rig: MakeRig,
) -> None:
    before = metric("cover_consumer_records_consumed_total", topic=TP0.topic)
    rig = await make_rig(max_pending_per_partition=2)
    rig.process.hold((0, 0), (0, 1))
    rig.add("a", "b", "c")

    await rig.step()

    assert metric("cover_consumer_records_consumed_total", topic=TP0.topic) == before + 2


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


async def test_a_fetch_asks_for_the_poll_timeout_and_no_more_records_than_there_is_room_for(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(max_in_flight=3)
    rig.process.hold((0, 0), (0, 1))
    rig.add("a", "b")
    await rig.step()
    rig.add("c", "d")

    await rig.step()
    await rig.process.wait_started((0, 2))

    assert rig.source.fetch_limits == [(60, 3), (60, 1)]
    assert rig.process.started == [(0, 0), (0, 1), (0, 2)]


async def test_the_partition_cap_admits_only_the_room_a_non_empty_window_leaves(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(max_pending_per_partition=3)
    rig.process.hold((0, 0))
    rig.add("a", "b")
    await rig.step()
    await rig.process.wait_finished((0, 1))  # the window stays 2: (0, 1) is behind (0, 0)
    rig.add("c", "d", "e")

    await rig.step()
    await rig.process.wait_started((0, 2))

    assert rig.process.started == [(0, 0), (0, 1), (0, 2)]
    assert rig.source.positions[TP0] == 3  # d and e were sought back


async def test_a_pending_fetch_is_kept_across_steps_and_the_records_it_takes_are_admitted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    for _ in range(2):
        stepping = rig.start_step()
        await bounded(rig.source.waiting.wait())
        rig.engine.wake()  # the step ends; its fetch goes on waiting
        await bounded(stepping)

    rig.source.returned.clear()
    rig.add("a")
    await bounded(rig.source.returned.wait())  # the pending fetch took the record
    await rig.step()
    await rig.process.wait_finished((0, 0))

    assert rig.source.fetched_from == [{TP0}]


async def test_a_fetch_that_finished_before_its_partitions_changed_is_still_admitted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(partitions=(TP0, TP1), max_pending_per_partition=1)
    rig.process.hold((0, 0))
    rig.add("a")
    await rig.step()  # (0, 0) admitted: TP0 is at its cap
    stepping = rig.start_step()
    await bounded(rig.source.waiting.wait())
    assert rig.source.fetched_from[-1] == {TP1}
    rig.process.release((0, 0))  # room in TP0: wakes the step; the fetch for TP1 goes on
    await bounded(stepping)

    rig.source.returned.clear()
    rig.add("b", tp=TP1)
    await bounded(rig.source.returned.wait())  # the fetch for TP1 alone is done
    await rig.step()  # TP0 resumes: a new fetch would be for both, but this one comes first
    await rig.process.wait_finished((1, 0))

    assert rig.process.started == [(0, 0), (1, 0)]


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


async def test_commits_stop_failing_once_what_failed_was_revoked(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.add("a")
    await rig.step()
    await rig.process.wait_finished((0, 0))
    rig.source.failing_commits = 1
    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.engine.commits_failing_since is not None
    rig.source.failing_commits = 1  # the commit at the revocation fails too
    await bounded(rig.engine.on_revoked([TP0]))

    rig.clock.advance(1)
    await rig.empty_step()  # nothing left to commit: the idle replica is not failing

    assert rig.engine.commits_failing_since is None


async def test_a_failed_commit_is_logged_and_retried_at_the_next_interval(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.add("a")
    await rig.step()
    await rig.process.wait_finished((0, 0))
    rig.source.failing_commits = 1
    metrics.LAST_COMMIT.set(0)

    rig.clock.advance(1)
    await rig.empty_step()
    [failure] = rig.events("commit_failed")
    assert (failure["error"], failure["partitions"], failure["log_level"]) == (
        "CommitFailedError",
        [0],
        "warning",
    )
    assert failure["reason"] == str(CommitFailedError("the group rebalanced"))
    await rig.empty_step()  # same time: not retried before the interval
    assert rig.source.commits == []
    assert rig.engine.commits_failing_since == rig.clock.now  # readiness reads it

    assert metric("cover_consumer_last_commit_timestamp_seconds") == 0

    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}]
    assert rig.engine.committed() == {TP0: 1}
    assert rig.engine.commits_failing_since is None
    # Wall time, for the dashboard: only a success moves it.
    assert metric("cover_consumer_last_commit_timestamp_seconds") > 0


async def test_commit_answers_whether_the_broker_took_the_offsets(make_rig: MakeRig) -> None:
    rig = await make_rig()
    assert await rig.engine.commit() is True  # nothing to commit: nothing refused
    rig.add("a")
    await rig.step()
    await rig.process.wait_finished((0, 0))
    rig.source.failing_commits = 1

    assert await rig.engine.commit() is False
    assert await rig.engine.commit() is True
    assert rig.source.commits == [{TP0: 1}]


async def test_a_commit_logs_the_offsets_it_stored_at_debug_level(make_rig: MakeRig) -> None:
    rig = await make_rig(partitions=(TP0, TP1))
    rig.add("a", "b")
    rig.add("c", tp=TP1)
    await rig.step()
    await rig.process.wait_finished((0, 0), (0, 1), (1, 0))

    await rig.engine.commit()

    assert rig.events("offsets_committed") == [
        {
            "event": "offsets_committed",
            "log_level": "debug",
            "offsets": {"vod-cover-events/0": 2, "vod-cover-events/1": 1},
        }
    ]


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
    assert (failure["error"], failure["reason"]) == (
        "KafkaConnectionError",
        "KafkaConnectionError: broker gone",
    )
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
    assert timeout["reason"] == (
        "handlers still running; the new owner processes their records again"
    )
    assert rig.source.commits == [{TP0: 1}]

    rig.process.release((0, 1))  # finishes after its partition is gone
    await rig.process.wait_finished((0, 1))
    rig.clock.advance(1)
    await rig.empty_step()
    assert rig.source.commits == [{TP0: 1}]
    assert rig.engine.in_flight == 0


async def test_assigning_and_revoking_log_the_partitions_and_count_the_rebalances(
    make_rig: MakeRig,
) -> None:
    assigned = metric("cover_consumer_rebalances_total", change="assigned")
    revoked = metric("cover_consumer_rebalances_total", change="revoked")

    rig = await make_rig(partitions=(TP1, TP0))
    await rig.engine.on_revoked([TP1, TP0])

    names = ["vod-cover-events/0", "vod-cover-events/1"]
    assert rig.events("partitions_assigned") == [
        {"event": "partitions_assigned", "log_level": "info", "partitions": names}
    ]
    assert rig.events("partitions_revoked") == [
        {"event": "partitions_revoked", "log_level": "info", "partitions": names}
    ]
    assert metric("cover_consumer_rebalances_total", change="assigned") == assigned + 1
    assert metric("cover_consumer_rebalances_total", change="revoked") == revoked + 1


async def test_a_revoked_partition_in_a_pending_batch_is_skipped_but_the_others_are_admitted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(partitions=(TP0, TP1))
    rig.process.hold((0, 0))
    rig.add("a")
    await rig.step()
    stepping = rig.start_step()
    await bounded(rig.source.waiting.wait())  # a fetch of both partitions waits
    rig.engine.wake()
    await bounded(stepping)
    revoking = asyncio.create_task(rig.engine.on_revoked([TP0]))  # drains: (0, 0) runs

    rig.source.returned.clear()
    rig.add("b")
    rig.add("c", tp=TP1)
    await bounded(rig.source.returned.wait())  # the pending fetch took (0, 1) and (1, 0)
    await rig.step()
    await rig.process.wait_finished((1, 0))
    rig.process.release((0, 0))
    await bounded(revoking)

    assert rig.process.started == [(0, 0), (1, 0)]  # (0, 1) is the next owner's
    assert rig.source.commits == [{TP0: 1}]


async def test_a_partition_revoked_while_paused_is_forgotten_and_consumed_again_once_reassigned(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(max_pending_per_partition=1)
    rig.process.hold((0, 0))
    rig.add("a")
    await rig.step()  # (0, 0) admitted: TP0 is at its cap
    rig.engine.wake()
    await rig.step()  # pauses TP0; nothing to fetch
    assert rig.engine.paused == {TP0}

    revoking = asyncio.create_task(rig.engine.on_revoked([TP0]))
    rig.process.release((0, 0))
    await bounded(revoking)
    rig.source.unassign([TP0])
    assert rig.engine.paused == frozenset()

    rig.source.assign([TP0])
    await rig.engine.on_assigned([TP0])
    rig.add("b", "b")  # one asset: its records run on the worker its first record took
    await rig.step()
    await rig.process.wait_finished((0, 1))
    await rig.step()
    await rig.process.wait_finished((0, 2))
    rig.clock.advance(1)
    await rig.empty_step()

    assert rig.source.commits == [{TP0: 1}, {TP0: 3}]


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

    before = metric("cover_consumer_records_released_total", reason="shutdown timeout")
    drained = await bounded(rig.engine.shutdown(timeout=0.2))

    assert drained is False
    [released] = rig.events("record_released")
    assert (released["offset"], released["reason"]) == (1, "shutdown timeout")
    after = metric("cover_consumer_records_released_total", reason="shutdown timeout")
    assert after - before == 1
    assert rig.source.commits == [{TP0: 1}]
    assert rig.engine.in_flight == 0


async def test_shutdown_cancels_a_pending_fetch_and_may_be_called_again(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    stepping = rig.start_step()
    await bounded(rig.source.waiting.wait())
    rig.engine.wake()
    await bounded(stepping)  # its fetch goes on waiting

    assert await bounded(rig.engine.shutdown(timeout=1)) is True
    assert await bounded(rig.engine.shutdown(timeout=1)) is True
    assert rig.source.paused == {TP0}


# -- a record whose processing raises ------------------------------------------------------


async def failing_rig(make_rig: MakeRig, *offsets: int) -> Rig:
    """A rig whose payloads are ten times the offset, described on the lines, and whose
    processing of the records of partition 0 at ``offsets`` raises."""
    rig = await make_rig(
        prepare=lambda record: (None, record.offset * 10),
        describe=lambda payload: {"payload": payload},
    )
    rig.process.fail(*((0, offset) for offset in offsets))
    return rig


async def test_a_record_whose_processing_raises_is_logged_holds_the_loop_and_is_never_committed(
    make_rig: MakeRig,
) -> None:
    rig = await failing_rig(make_rig, 1)
    rig.add("a", "b", "c")
    await rig.step()
    await rig.process.wait_finished((0, 0), (0, 2))

    rig.clock.advance(1)
    rig.engine.wake()  # the held loop fetches nothing; this step only commits
    await rig.step()

    [stuck] = rig.events("record_stuck")
    assert stuck == {
        "event": "record_stuck",
        "log_level": "critical",
        "topic": "vod-cover-events",
        "partition": 0,
        "offset": 1,
        "payload": 10,
        "reason": "processing raised before the record had an outcome",
        "action": "consumption paused; the record is not committed; see the traceback",
        "exc_info": True,
    }
    assert Reason.STUCK in rig.engine.hold
    assert rig.engine.hold.why() == "a record could not be finished: vod-cover-events/0@1"
    assert rig.source.paused == {TP0}
    assert rig.source.commits == [{TP0: 1}]


async def test_shutdown_releases_a_stuck_record_and_reports_the_rest_drained(
    make_rig: MakeRig,
) -> None:
    rig = await failing_rig(make_rig, 0)
    rig.add("a", "b")
    await rig.step()
    await rig.process.wait_finished((0, 1))
    before = metric("cover_consumer_records_released_total", reason="could not be finished")

    assert await bounded(rig.engine.shutdown(timeout=1)) is True
    after = metric("cover_consumer_records_released_total", reason="could not be finished")
    assert after - before == 1

    assert rig.events("record_released") == [
        {
            "event": "record_released",
            "log_level": "info",
            "topic": "vod-cover-events",
            "partition": 0,
            "offset": 0,
            "payload": 0,
            "reason": "could not be finished",
        }
    ]
    assert rig.source.commits == []  # (0, 1) is done, but behind the stuck (0, 0)
    assert rig.engine.in_flight == 0


# -- times on asyncio's clock (a virtual-time loop) ---------------------------------------


@virtual_time
async def test_a_step_with_every_partition_paused_returns_after_the_poll_timeout() -> None:
    async with rig_for(max_pending_per_partition=1, poll_timeout=1.5) as rig:
        rig.process.hold((0, 0))
        rig.add("a")
        await rig.step()  # (0, 0) admitted: TP0 is at its cap
        began = now()

        await rig.step()

        assert elapsed_since(began) == pytest.approx(1.5)
        assert rig.engine.paused == {TP0}
        assert rig.source.fetched_from == [{TP0}]


@virtual_time
async def test_a_step_waits_for_a_fetch_that_outlasts_the_poll_timeout() -> None:
    async with rig_for(source=SlowSource([TP0]), poll_timeout=1) as rig:
        stepping = rig.start_step()
        await asyncio.sleep(1.5)
        assert not stepping.done()

        rig.add("a")
        await bounded(stepping)

        await rig.process.wait_finished((0, 0))
        assert rig.source.fetched_from == [{TP0}]


@virtual_time
async def test_a_record_finishing_in_an_unpaused_partition_does_not_wake_a_waiting_step() -> None:
    async with rig_for() as rig:
        rig.process.hold((0, 0))
        rig.add("a")
        await rig.step()
        stepping = rig.start_step()
        await bounded(rig.source.waiting.wait())

        rig.process.release((0, 0))
        await rig.process.wait_finished((0, 0))
        await asyncio.sleep(1)

        assert not stepping.done()  # it waits for records, not for room
        rig.source.poke()
        await bounded(stepping)


@virtual_time
async def test_records_finishing_behind_a_stalled_one_do_not_wake_a_step_waiting_for_room() -> None:
    async with rig_for(max_pending_per_partition=3) as rig:
        rig.process.hold((0, 0), (0, 1), (0, 2))
        rig.add("a", "b", "c")
        await rig.step()  # TP0 is at its cap
        stepping = rig.start_step()  # pauses TP0 and waits for room

        rig.process.release((0, 1), (0, 2))
        await rig.process.wait_finished((0, 1), (0, 2))
        await asyncio.sleep(1)
        assert not stepping.done()  # the window is still 3

        rig.process.release((0, 0))
        await bounded(stepping)
        assert rig.engine.in_flight == 0


@virtual_time
async def test_room_freed_by_a_record_of_a_revoked_partition_wakes_a_full_loop() -> None:
    async with rig_for(partitions=(TP0, TP1), max_in_flight=2, revoke_timeout=0.5) as rig:
        rig.process.hold((0, 0), (1, 0))
        rig.add("a")
        rig.add("b", tp=TP1)
        await rig.step()
        await rig.process.wait_started((0, 0), (1, 0))
        await bounded(rig.engine.on_revoked([TP0]))  # gives up on (0, 0), which runs on
        rig.engine.wake()
        await rig.step()  # full: pauses TP1, fetches nothing
        stepping = rig.start_step()
        await asyncio.sleep(1)
        assert not stepping.done()  # nothing to fetch, no room

        rig.process.release((0, 0))
        await bounded(stepping)

        assert rig.engine.in_flight == 1


@virtual_time
async def test_a_stuck_handler_holds_a_revoke_for_exactly_the_revoke_timeout() -> None:
    async with rig_for(revoke_timeout=0.5) as rig:
        rig.process.hold((0, 0))
        rig.add("a")
        await rig.step()
        await rig.process.wait_started((0, 0))
        began = now()

        await bounded(rig.engine.on_revoked([TP0]))

        assert elapsed_since(began) == pytest.approx(0.5)
        assert len(rig.events("revoke_timeout")) == 1


@pytest.mark.parametrize(("timeout", "drain"), [(8.0, 6.0), (40.0, 35.0)])
@virtual_time
async def test_shutdown_with_a_stuck_handler_drains_for_the_timeout_less_a_commit_reserve(
    timeout: float, drain: float
) -> None:
    async with rig_for() as rig:
        rig.process.hold((0, 1))
        rig.add("a", "b")
        await rig.step()
        await rig.process.wait_finished((0, 0))
        began = now()

        async with asyncio.timeout(2 * timeout):
            drained = await rig.engine.shutdown(timeout)

        # The commit keeps min(5 s, a quarter of the timeout); the drain has the rest.
        assert drained is False
        assert elapsed_since(began) == pytest.approx(drain)
        assert rig.source.commits == [{TP0: 1}]


@virtual_time
async def test_shutdown_gives_a_commit_the_broker_does_not_answer_only_its_reserve() -> None:
    async with rig_for(source=SilentBroker([TP0])) as rig:
        rig.add("a")
        await rig.step()
        await rig.process.wait_finished((0, 0))
        began = now()

        async with asyncio.timeout(16):
            assert await rig.engine.shutdown(8) is True

        assert elapsed_since(began) == pytest.approx(2)  # min(5, 8 / 4)
        assert rig.events("commit_failed") == [
            {
                "event": "commit_failed",
                "log_level": "warning",
                "reason": "broker did not answer before the shutdown timeout",
            }
        ]


@virtual_time
async def test_a_commit_the_broker_does_not_answer_holds_a_step_only_its_timeout() -> None:
    # aiokafka retries a commit until the coordinator answers: for ever during a cut.
    async with rig_for(source=SilentBroker([TP0]), commit_timeout=0.5) as rig:
        rig.add("a")
        await rig.step()
        await rig.process.wait_finished((0, 0))
        rig.clock.advance(1)
        began = now()

        await rig.empty_step()

        assert elapsed_since(began) == pytest.approx(0.5)
        [failure] = rig.events("commit_failed")
        assert (failure["error"], failure["reason"]) == ("TimeoutError", "no answer within 0.5s")
        assert rig.engine.commits_failing_since == rig.clock.now  # readiness reads it
        assert rig.engine.committed() == {TP0: None}


async def test_a_cancelled_error_raised_by_processing_itself_is_a_stuck_record_not_a_lost_worker(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig()
    rig.process.fail((0, 0), error=asyncio.CancelledError("raised, not a cancellation"))
    rig.add("a", "b")
    await rig.step()
    await rig.process.wait_started((0, 0))
    await rig.process.wait_finished((0, 1))

    assert [e["offset"] for e in rig.events("record_stuck")] == [0]
    assert rig.engine.in_flight == 1  # (0, 1) finished on the same worker; (0, 0) is held
