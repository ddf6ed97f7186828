"""consumer.scheduling.KeyedScheduler: one key at a time in order, keys concurrently."""

from __future__ import annotations

import asyncio
from collections import Counter

from consumer.engine.scheduling import KeyedScheduler

Item = tuple[str, int]  # (key, sequence number)


class Runs:
    """The scheduler's ``run``: each item waits for its gate; concurrency is recorded."""

    def __init__(self) -> None:
        self.started: list[Item] = []
        self.finished: list[Item] = []
        self.running: Counter[str] = Counter()
        self.max_per_key: Counter[str] = Counter()
        self.max_total = 0
        self._open = False
        self._gates: dict[Item, asyncio.Event] = {}
        self._started: dict[Item, asyncio.Event] = {}
        self._finished: dict[Item, asyncio.Event] = {}

    def gate(self, item: Item) -> asyncio.Event:
        if item not in self._gates:
            self._gates[item] = asyncio.Event()
            if self._open:
                self._gates[item].set()
        return self._gates[item]

    async def started_event(self, item: Item) -> None:
        async with asyncio.timeout(1):
            await self._started.setdefault(item, asyncio.Event()).wait()

    async def finished_event(self, item: Item) -> None:
        async with asyncio.timeout(1):
            await self._finished.setdefault(item, asyncio.Event()).wait()

    def release_all(self) -> None:
        """Open every gate, including those of items that have not started yet."""
        self._open = True
        for gate in self._gates.values():
            gate.set()

    async def __call__(self, item: Item) -> None:
        key = item[0]
        self.started.append(item)
        self.running[key] += 1
        self.max_per_key[key] = max(self.max_per_key[key], self.running[key])
        self.max_total = max(self.max_total, sum(self.running.values()))
        self._started.setdefault(item, asyncio.Event()).set()
        try:
            await self.gate(item).wait()
        finally:
            self.running[key] -= 1
        self.finished.append(item)
        self._finished.setdefault(item, asyncio.Event()).set()


async def test_items_of_one_key_run_one_at_a_time_in_submission_order() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=8)
    items = [("a", n) for n in range(4)]
    for item in items:
        scheduler.submit("a", item)

    await runs.started_event(items[0])
    assert runs.started == [items[0]]  # the others wait behind it

    runs.release_all()
    await runs.finished_event(items[-1])

    assert runs.finished == items
    assert runs.max_per_key["a"] == 1


async def test_items_of_different_keys_run_at_the_same_time() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=8)
    scheduler.submit("a", ("a", 0))
    scheduler.submit("b", ("b", 0))

    await runs.started_event(("a", 0))
    await runs.started_event(("b", 0))

    assert runs.max_total == 2
    assert sorted(scheduler.running()) == [("a", 0), ("b", 0)]
    runs.release_all()
    await runs.finished_event(("b", 0))


async def test_concurrency_is_capped_by_a_fixed_pool_of_workers() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=3)
    tasks_before = len(asyncio.all_tasks())
    for key in "abcdefgh":
        scheduler.submit(key, (key, 0))
    await runs.started_event(("c", 0))

    assert len(asyncio.all_tasks()) - tasks_before == 3
    assert sorted(scheduler.running()) == [("a", 0), ("b", 0), ("c", 0)]
    runs.release_all()
    for key in "abcdefgh":
        await runs.finished_event((key, 0))
    assert runs.max_total == 3


async def test_items_that_do_not_block_run_back_to_back_on_one_worker() -> None:
    done: list[int] = []
    all_done = asyncio.Event()

    async def run(item: int) -> None:
        done.append(item)
        if len(done) == 100:
            all_done.set()

    scheduler = KeyedScheduler(run, workers=64)
    tasks_before = len(asyncio.all_tasks())
    for n in range(100):
        scheduler.submit(f"k{n}", n)
    async with asyncio.timeout(1):
        await all_done.wait()

    # One worker ran them all; a second was woken in case the first blocked, then parked.
    assert len(asyncio.all_tasks()) - tasks_before <= 2
    assert done == list(range(100))


async def test_a_lone_key_is_run_by_one_worker_that_wakes_no_other() -> None:
    ran = asyncio.Event()

    async def run(item: int) -> None:
        ran.set()

    scheduler = KeyedScheduler(run, workers=64)
    tasks_before = len(asyncio.all_tasks())
    scheduler.submit("a", 0)
    async with asyncio.timeout(1):
        await ran.wait()
    await asyncio.sleep(0)

    # No key was left waiting: no help was called for, so no second worker exists.
    assert len(asyncio.all_tasks()) - tasks_before == 1


async def test_a_key_is_forgotten_when_its_queue_is_empty() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=8)
    scheduler.submit("a", ("a", 0))
    runs.release_all()
    await runs.finished_event(("a", 0))

    # The worker forgets the key right after its last item, before control comes back here.
    assert scheduler.active_keys == 0
    assert scheduler.running() == []


async def test_discard_waiting_removes_matching_items_that_have_not_started() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=8)
    for item in [("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0)]:
        scheduler.submit(item[0], item)
    await runs.started_event(("a", 0))
    await runs.started_event(("b", 0))

    dropped = scheduler.discard_waiting(lambda item: item[1] in (0, 1, 3))

    assert dropped == [("a", 1), ("a", 3)]  # ("a", 0) and ("b", 0) are running: kept
    runs.release_all()
    await runs.finished_event(("a", 2))
    assert runs.finished.count(("a", 2)) == 1
    assert sorted(runs.finished) == [("a", 0), ("a", 2), ("b", 0)]


async def test_cancel_all_returns_running_and_waiting_items_and_stops_every_worker() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=8)
    for item in [("a", 0), ("a", 1), ("b", 0)]:
        scheduler.submit(item[0], item)
    await runs.started_event(("a", 0))
    await runs.started_event(("b", 0))

    abandoned = await scheduler.cancel_all()

    assert sorted(abandoned) == [("a", 0), ("a", 1), ("b", 0)]
    assert scheduler.active_keys == 0
    assert runs.finished == []
    assert sum(runs.running.values()) == 0  # the running calls were cancelled, not left hanging


async def test_a_burst_of_new_keys_wakes_one_parked_worker_and_starts_no_other() -> None:
    done: list[int] = []
    ran = {99: asyncio.Event(), 102: asyncio.Event()}

    async def run(item: int) -> None:
        done.append(item)
        if item in ran:
            ran[item].set()

    scheduler = KeyedScheduler(run, workers=64)
    for n in range(100):
        scheduler.submit(f"k{n}", n)
    async with asyncio.timeout(1):
        await ran[99].wait()
    tasks = len(asyncio.all_tasks())  # every item ran: the workers are idle

    for n in range(100, 103):
        scheduler.submit(f"k{n}", n)

    assert len(asyncio.all_tasks()) == tasks  # one idle worker woken; none started
    async with asyncio.timeout(1):
        await ran[102].wait()
    assert done[100:] == [100, 101, 102]


async def test_discard_waiting_looks_at_every_key_not_only_the_first() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=8)
    for item in [("a", 0), ("a", 1), ("b", 0), ("b", 1)]:
        scheduler.submit(item[0], item)
    await runs.started_event(("a", 0))
    await runs.started_event(("b", 0))

    dropped = scheduler.discard_waiting(lambda item: item == ("b", 1))

    assert dropped == [("b", 1)]
    runs.release_all()
    await runs.finished_event(("a", 1))
    assert sorted(runs.finished) == [("a", 0), ("a", 1), ("b", 0)]


async def test_a_key_dropped_before_it_started_is_forgotten_and_can_come_back() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=1)
    for item in [("a", 0), ("b", 0), ("b", 1)]:
        scheduler.submit(item[0], item)
    await runs.started_event(("a", 0))  # "b" waits for the only worker

    dropped = scheduler.discard_waiting(lambda item: item[0] == "b")

    assert dropped == [("b", 0), ("b", 1)]
    assert scheduler.active_keys == 1
    runs.release_all()
    scheduler.submit("b", ("b", 2))
    await runs.finished_event(("b", 2))
    assert runs.finished == [("a", 0), ("b", 2)]


async def test_a_key_with_items_left_after_a_discard_still_runs_them() -> None:
    runs = Runs()
    scheduler = KeyedScheduler(runs, workers=1)
    for item in [("a", 0), ("b", 0), ("b", 1)]:
        scheduler.submit(item[0], item)
    await runs.started_event(("a", 0))  # "b" waits for the only worker

    dropped = scheduler.discard_waiting(lambda item: item == ("b", 0))

    assert dropped == [("b", 0)]
    runs.release_all()
    await runs.finished_event(("b", 1))
    assert runs.finished == [("a", 0), ("b", 1)]
