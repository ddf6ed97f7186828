"""Three replicas sharing a tenant's write quota, simulated in virtual time: each reads the
group's offsets every period at its own phase, asks its share, and spends it greedily on
its partitions' records; VOD receives every call a little later. Whatever the work does
(a hot partition that moves, a rebalance, a replica that cannot read Kafka), VOD never
receives more than the quota in any window."""

from __future__ import annotations

import random
from collections.abc import Callable

from consumer.testing import ManualClock
from consumer.testing.vodsim import Quotas, SimState
from consumer.vod.quota import QuotaWindow, WorkView

W, Q, PARTITIONS = 3.0, 20, 6
PERIOD = 0.15  # as the daemon's reading period for a 3 s window
STEP = 0.01
COMMIT_INTERVAL = 0.2
JITTER = 0.1  # seconds a call may take to reach VOD
LATENCY = 0.05  # seconds from Kafka answering a reading to the ask made from it


class Group:
    """The main topic's partitions (high-water marks, committed offsets) and the replicas."""

    def __init__(self, seed: int = 7) -> None:
        self.clock = ManualClock(now=0.0)
        self.high = [0] * PARTITIONS
        self.committed = [0] * PARTITIONS
        self.vod = SimState(quotas=Quotas(writes_per_minute=Q, window=W))
        self.rng = random.Random(seed)
        self.replicas = [Replica(self, {2 * i, 2 * i + 1}, phase=i * PERIOD / 3) for i in range(3)]

    def produce(self, partition: int, records: int) -> None:
        self.high[partition] += records

    def run(self, seconds: float, each_step: Callable[[float], None] = lambda now: None) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            now = self.clock.now
            each_step(now)
            for replica in self.replicas:
                replica.step(now)
            self.clock.advance(STEP)

    def move(self, partition: int, source: Replica, target: Replica) -> None:
        """A rebalance: the owner finishes, commits and lets go, then the new one takes it."""
        source.commit()
        source.owned.discard(partition)
        source.ask()
        target.owned.add(partition)
        target.done[partition] = self.committed[partition]
        target.ask()

    @property
    def backlog(self) -> int:
        return sum(high - done for high, done in zip(self.high, self.committed, strict=True))

    def most_in_window(self) -> int:
        return self.vod.most_in_window("write")


class Replica:
    def __init__(self, group: Group, owned: set[int], phase: float) -> None:
        self.group = group
        self.owned = owned
        self.view = WorkView("m", W, PERIOD, clock=group.clock)
        self.writes = QuotaWindow(Q, clock=group.clock, window=W)
        self.done = {p: 0 for p in owned}  # next record to process, per owned partition
        self.next_reading = phase
        self.next_commit = phase
        self.reads = True  # False: its readings of Kafka fail
        self.reading: tuple[float, dict[tuple[str, int], tuple[int, int]]] | None = None
        self.sent: list[float] = []

    def step(self, now: float) -> None:
        for p in sorted(self.owned):
            while self.done[p] < self.group.high[p] and self.writes.take() == 0.0:
                self.done[p] += 1
                self.sent.append(now)
                self.group.vod.received["write"].append(now + self.group.rng.uniform(0, JITTER))
        if now >= self.next_commit:
            self.commit()
            self.next_commit += COMMIT_INTERVAL
        if self.reading is not None and now >= self.reading[0] + LATENCY:
            self.view.read(*self.reading)
            self.ask()
            self.reading = None
        if now >= self.next_reading:
            group = self.group
            offsets = {("m", p): (group.high[p], group.committed[p]) for p in range(PARTITIONS)}
            self.reading = (now, offsets) if self.reads else None
            if not self.reads:
                self.ask()
            self.next_reading += PERIOD

    def commit(self) -> None:
        for p in self.owned:
            self.group.committed[p] = self.done[p]

    def ask(self) -> None:
        busy = {("m", p) for p in self.owned if self.group.committed[p] < self.group.high[p]}
        ask = self.view.ask({("m", p) for p in self.owned}, busy, PARTITIONS)
        self.writes.ask(
            ask.share.calls(Q), at_once=ask.at_once, until=ask.until, then=ask.then.calls(Q)
        )


def hot_partition_moving() -> Group:
    group = Group()
    group.run(5.0)  # settled: nothing busy for more than a window
    group.produce(0, 40)
    group.run(6.0)
    group.produce(3, 40)  # the hot partition moves to the second replica...
    group.run(1.5)
    group.produce(5, 40)  # ...and to the third while the second still drains
    group.run(8.0)
    group.produce(1, 20)  # back to the first, beside an even spread
    for p in range(PARTITIONS):
        group.produce(p, 5)
    group.run(25.0)
    return group


def test_the_hot_partition_moving_between_replicas_never_pushes_vod_over_its_quota() -> None:
    group = hot_partition_moving()

    assert group.backlog == 0
    assert group.most_in_window() <= Q


def test_the_replica_holding_the_only_busy_partition_gets_nearly_the_whole_quota() -> None:
    group = Group()
    group.run(5.0)
    group.produce(0, 60)
    group.run(12.0)

    sent = group.replicas[0].sent
    assert len(sent) == 60
    # 60 writes in 3 windows and a bit: 18 a window (the pool) from its first claim
    assert sent[-1] - sent[0] < 3 * W * 1.1 + 1.5


def test_a_rebalance_moving_the_hot_partition_never_pushes_vod_over_its_quota() -> None:
    group = Group()
    group.run(5.0)
    group.produce(0, 90)
    group.run(4.0)
    first, _, third = group.replicas
    group.move(0, first, third)
    group.run(3.0)
    group.move(0, third, first)  # and back, within a window of the first move
    group.run(20.0)

    assert group.backlog == 0
    assert group.most_in_window() <= Q


def test_a_replica_that_cannot_read_kafka_never_pushes_vod_over_its_quota() -> None:
    group = Group()
    group.run(5.0)
    group.produce(0, 40)
    group.run(3.0)
    blind = group.replicas[1]
    blind.reads = False  # it sees p0 busy no more, then nothing at all
    group.produce(2, 30)
    group.produce(3, 30)
    group.run(4.0)
    blind.reads = True
    group.run(20.0)

    assert group.backlog == 0
    assert group.most_in_window() <= Q


def test_an_even_spread_uses_the_whole_quota_in_every_window() -> None:
    group = Group()
    group.run(5.0)
    for p in range(PARTITIONS):
        group.produce(p, 20)
    group.run(22.0)

    sent = sorted(t for replica in group.replicas for t in replica.sent)
    assert len(sent) == 120
    assert group.most_in_window() == Q
    assert sent[-1] - sent[0] < 6 * W * 1.1 + 1.5  # 120 writes: 20 a window, and a slow start


def test_two_partitions_turning_busy_together_never_take_the_pool_twice() -> None:
    group = Group()
    group.run(5.0 - 0.005)  # just after the first replica read, before it asks
    group.produce(2, 40)
    group.run(0.01)  # just after the second replica read
    group.produce(0, 40)
    group.run(15.0)

    assert group.backlog == 0
    assert group.most_in_window() <= Q


def test_a_partition_turning_busy_at_any_moment_of_anothers_claim_never_pushes_vod_over() -> None:
    for delay in (0.0, 0.3, 0.6, 0.9, 1.05, 1.1, 1.15, 1.2, 1.3, 1.6, 2.0, 3.0):
        group = Group()
        group.run(5.0)
        group.produce(2, 40)
        group.run(delay)
        group.produce(0, 40)  # turns busy while it still asks by partitions, or later
        group.run(20.0)

        assert group.backlog == 0, delay
        assert group.most_in_window() <= Q, delay
