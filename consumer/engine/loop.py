"""The consume loop: fetch within bounds, schedule by key, commit done prefixes.

``step()`` is one iteration (flow control, fetch, admit, maybe commit) and is
callable on its own, so the loop's logic runs against an in-memory ``Source``
in unit tests and against Kafka in production.

Over 300 lines on purpose: admission, flow control, commits, rebalance and the drain
are one state machine over the same fields (in flight, paused, held, revoking, the
pending fetch); split apart, each half would reach into the other's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import structlog
from aiokafka.errors import KafkaError

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.engine.offsets import OffsetTracker
from consumer.engine.scheduling import KeyedScheduler
from consumer.engine.work import Prepare, Work
from consumer.hold import Hold, Reason
from consumer.kafka.source import Record, Source, TopicPartition

__all__ = ["DueTimes", "Engine", "Limits"]


class Limits(Protocol):
    """The bounds the loop keeps (the ``consumer`` settings section has them all)."""

    @property
    def max_in_flight(self) -> int: ...
    @property
    def max_pending_per_partition(self) -> int: ...
    @property
    def commit_interval(self) -> float: ...
    @property
    def revoke_timeout(self) -> float: ...
    @property
    def poll_timeout(self) -> float: ...
    @property
    def fetch_max_records(self) -> int: ...


#: ``topic -> record -> due time``: how to read when a topic's records are due (epoch
#: seconds, None: now), or None when the topic's records are always due at once.
DueTimes = Callable[[str], Callable[[Record], float | None] | None]


def _undecided(record: Record) -> tuple[None, None]:
    return None, None


def _always_due(topic: str) -> None:
    return None


class Engine:
    def __init__(
        self,
        source: Source,
        process: Callable[[Work], Awaitable[object]],
        settings: Limits,
        log: structlog.typing.FilteringBoundLogger,
        *,
        prepare: Prepare = _undecided,
        due: DueTimes = _always_due,
        describe: Callable[[Any], Mapping[str, Any]] = lambda _: {},
        hold: Hold | None = None,
        clock: Clock = SYSTEM_CLOCK,
        before_commit: Callable[[], None] = lambda: None,
        commit_timeout: float = 30.0,
    ) -> None:
        self._source = source
        self._process = process
        self._settings = settings
        self._log = log
        self._prepare = prepare
        self._describe = describe
        self._clock = clock
        # A record of a retry tier is due at a wall-clock time (``due``); its partition is
        # held, unfetched, until then: due order is log order in a tier. Asked per topic, so
        # the main topic's records are not each asked.
        self._due = due
        self._held: dict[TopicPartition, float] = {}
        # While anything holds the daemon (guard, VOD circuit, shutdown), nothing is fetched.
        self.hold = hold if hold is not None else Hold()
        self.hold.on_change(self.wake)
        # Outcome lines are written in batches: those of the records a commit covers must be
        # out first, or a crash right after it would lose them for good.
        self._before_commit = before_commit
        # aiokafka retries a commit until the coordinator answers: for ever while the broker
        # is cut off. Awaited unbounded, that froze the loop for the whole cut (no beat for
        # /livez, no fetch, no flow control); a commit given up is tried at the next interval.
        self._commit_timeout = commit_timeout
        # Records whose processing raised: never completed, so never committed past.
        self._stuck: list[Work] = []
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._scheduler: KeyedScheduler[Work] = KeyedScheduler(
            self._run, workers=settings.max_in_flight
        )
        self._in_flight = 0
        self._paused: set[TopicPartition] = set()
        self._revoking: set[TopicPartition] = set()
        self._wake = asyncio.Event()
        self._progress: asyncio.Event | None = None
        self._fetching: asyncio.Task[dict[TopicPartition, Sequence[Record]]] | None = None
        self._fetching_from: frozenset[TopicPartition] = frozenset()
        self._last_commit = clock.monotonic()
        self._stopping = False
        #: When the loop last completed a step (``clock.monotonic``): the liveness heartbeat.
        self.last_step = clock.monotonic()
        #: Since when offset commits fail, one after the other (``clock.monotonic``); None
        #: while they succeed: a replica whose commits fail is not ready.
        self.commits_failing_since: float | None = None

    # -- observation -------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def paused(self) -> frozenset[TopicPartition]:
        return frozenset(self._paused)

    def committed(self) -> dict[TopicPartition, int | None]:
        return {tp: self._tracker[tp].committed for tp in self._tracker.partitions()}

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        while not self._stopping:
            await self.step()

    def request_stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def step(self) -> None:
        """One iteration: apply flow control, wait for records or for room, admit, commit."""
        self._apply_flow_control()
        fetching = self._fetch_from(frozenset(self._tracker.partitions()) - self._paused)
        # Racing the fetch against "room was freed" lets a paused partition resume at once
        # instead of after the poll timeout.
        woken = asyncio.create_task(self._wake.wait())
        await asyncio.wait(
            (woken,) if fetching is None else (woken, fetching),
            timeout=self._settings.poll_timeout if fetching is None else None,
            return_when=asyncio.FIRST_COMPLETED,
        )
        woken.cancel()
        self._wake.clear()
        if fetching is not None and fetching.done():
            self._fetching = None
            try:
                self._admit(fetching.result())
            except KafkaError as exc:
                self._log.warning("fetch_failed", error=type(exc).__name__, reason=str(exc))
                # A persistent error (e.g. authorization) must not turn the loop into a spin.
                await self._clock.sleep(self._settings.poll_timeout)
        await self._maybe_commit()
        self.last_step = self._clock.monotonic()

    def _fetch_from(
        self, active: frozenset[TopicPartition]
    ) -> asyncio.Task[dict[TopicPartition, Sequence[Record]]] | None:
        """The pending fetch for exactly the unpaused partitions, (re)started as needed.

        A fetch is never asked for a paused partition: aiokafka drops the read-ahead of a
        paused partition it looks at, and the records would be fetched twice. While all
        partitions are paused nothing is fetched; aiokafka then counts the time towards
        ``max_poll_interval_ms``, which is how Kafka notices a member stuck for that long.
        """
        current = self._fetching
        if current is not None and (current.done() or self._fetching_from == active):
            return current  # a finished fetch is admitted first, whatever it was for
        if current is not None:
            current.cancel()  # safe: a waiting getmany holds no records yet
        self._fetching = None
        if active:
            room = self._settings.max_in_flight - self._in_flight
            self._fetching = asyncio.create_task(
                self._source.fetch(
                    active, self._settings.poll_timeout, min(room, self._settings.fetch_max_records)
                )
            )
            self._fetching_from = active
        return self._fetching

    def wake(self) -> None:
        """Look at flow control again now (e.g. a guard tripped)."""
        self._wake.set()

    def _apply_flow_control(self) -> None:
        full = self._in_flight >= self._settings.max_in_flight or bool(self.hold)
        cap = self._settings.max_pending_per_partition
        now = self._clock.wall()
        for tp in [tp for tp, due in self._held.items() if due <= now]:
            del self._held[tp]
        want = {
            tp
            for tp in self._tracker.partitions()
            if full or tp in self._revoking or tp in self._held or self._tracker[tp].window >= cap
        }
        if want != self._paused:
            if pause := want - self._paused:
                self._source.pause(pause)
            if resume := self._paused - want:
                self._source.resume(resume)
            self._paused = want

    def _admit(self, batch: dict[TopicPartition, Sequence[Record]]) -> None:
        cap = self._settings.max_pending_per_partition
        for tp, records in batch.items():
            if tp not in self._tracker or tp in self._revoking or not records:
                continue  # fetched just before a rebalance took the partition away
            state = self._tracker[tp]
            room = min(cap - state.window, self._settings.max_in_flight - self._in_flight)
            # Only records within room may hold the partition: one cut off by a cap is
            # fetched again anyway, and holding on it would delay due records before it.
            if (due := self._due(tp.topic)) is not None:
                room = min(room, self._due_prefix(tp, due, records[: max(room, 0)]))
            if room < len(records):
                # Exact bounds: hand the excess back to the broker position, fetch it later.
                self._source.seek(tp, records[max(room, 0)].offset)
                records = records[: max(room, 0)]
            metrics.RECORDS_CONSUMED.labels(tp.topic).inc(len(records))
            prepare, submit = self._prepare, self._scheduler.submit
            for record in records:
                state.add(record.offset)
                self._in_flight += 1
                key, payload = prepare(record)
                work = Work(record, tp, state, key, payload)
                submit(work.key, work)

    def _due_prefix(
        self, tp: TopicPartition, due: Callable[[Record], float | None], records: Sequence[Record]
    ) -> int:
        """How many leading records are due; hold the partition until the first that is not."""
        now = self._clock.wall()
        for index, record in enumerate(records):
            at = due(record)
            if at is not None and at > now:
                self._held[tp] = at
                return index
        return len(records)

    async def _run(self, work: Work) -> None:
        try:
            await self._process(work)
        except BaseException as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task and task.cancelling():
                raise  # shutdown gave up on it: released, not stuck
            # ``process`` gives every record its outcome, a dead letter included; one that
            # escapes means not even that worked. Never ack it: the record stays uncommitted
            # and nothing new is taken until someone looks.
            self._stuck.append(work)
            self._log.critical(
                "record_stuck",
                **self._fields(work),
                reason="processing raised before the record had an outcome",
                action="consumption paused; the record is not committed; see the traceback",
                exc_info=True,
            )
            self.hold.set(Reason.STUCK, f"{work.tp.topic}/{work.tp.partition}@{work.record.offset}")
            return
        # Complete (inline: every record passes here).
        was_full = self._in_flight >= self._settings.max_in_flight
        self._in_flight -= 1
        work.offsets.complete(work.record.offset)
        if was_full or (
            self._paused  # mostly empty: no partition to hash
            and work.tp in self._paused
            and work.offsets.window < self._settings.max_pending_per_partition
        ):
            self._wake.set()
        if self._progress is not None:
            self._progress.set()

    def _fields(self, work: Work) -> dict[str, Any]:
        return {**work.coordinates(), **self._describe(work.payload)}

    # -- commits -----------------------------------------------------------------------

    async def _maybe_commit(self) -> None:
        if self._clock.monotonic() - self._last_commit >= self._settings.commit_interval:
            await self.commit()

    async def commit(self, partitions: Collection[TopicPartition] | None = None) -> bool:
        """Commit the done prefix of owned partitions; False if the broker refused."""
        self._last_commit = self._clock.monotonic()
        offsets = self._tracker.to_commit(partitions)
        if not offsets:
            if partitions is None:
                # Nothing left to commit anywhere (what failed was revoked meanwhile): not
                # failing, or an idle replica would stay unready for good.
                self.commits_failing_since = None
            metrics.LAST_COMMIT.set_to_current_time()
            return True
        self._before_commit()
        try:
            await asyncio.wait_for(self._source.commit(offsets), self._commit_timeout)
        except (KafkaError, TimeoutError) as exc:
            metrics.COMMIT_FAILURES.inc()
            if self.commits_failing_since is None:
                self.commits_failing_since = self._clock.monotonic()
            self._log.warning(
                "commit_failed",
                error=type(exc).__name__,
                reason=str(exc) or f"no answer within {self._commit_timeout:g}s",
                partitions=sorted(tp.partition for tp in offsets),
            )
            return False
        self._tracker.mark_committed(offsets)
        self.commits_failing_since = None
        metrics.LAST_COMMIT.set_to_current_time()
        self._log.debug(
            "offsets_committed",
            offsets={f"{tp.topic}/{tp.partition}": o for tp, o in offsets.items()},
        )
        return True

    # -- rebalance ---------------------------------------------------------------------

    async def on_assigned(self, partitions: Collection[TopicPartition]) -> None:
        for tp in partitions:
            self._tracker.assign(tp)
        metrics.REBALANCES.labels("assigned").inc()
        self._log.info("partitions_assigned", partitions=_names(partitions))

    async def on_revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Stop taking work from these partitions, let their running work finish (bounded),
        commit what is done, and forget them: nothing is committed for them afterwards."""
        revoking = {tp for tp in partitions if tp in self._tracker}
        if not revoking:
            return
        self._revoking |= revoking
        self._release(
            self._scheduler.discard_waiting(lambda w: w.tp in revoking), "partition revoked"
        )
        drained = await self._wait_for(
            lambda: all(self._unfinished(tp) == 0 for tp in revoking), self._settings.revoke_timeout
        )
        if not drained:
            self._log.warning(
                "revoke_timeout",
                partitions=_names(revoking),
                still_running=sum(self._unfinished(tp) for tp in revoking),
                reason="handlers still running; the new owner processes their records again",
            )
        await self.commit(revoking)
        for tp in revoking:
            self._tracker.forget(tp)
            self._paused.discard(tp)
            self._held.pop(tp, None)
        self._revoking -= revoking
        metrics.REBALANCES.labels("revoked").inc()
        self._log.info("partitions_revoked", partitions=_names(revoking))

    def _unfinished(self, tp: TopicPartition) -> int:
        return sum(1 for w in self._scheduler.running() if w.tp == tp)

    # -- shutdown ----------------------------------------------------------------------

    async def shutdown(self, timeout: float) -> bool:
        """Stop fetching, drain in-flight work, commit. Returns whether everything drained.

        The commit gets a reserved slice of ``timeout`` so a slow drain cannot starve it,
        and it is bounded too, so a dead broker cannot hold the exit.
        """
        self.request_stop()
        if self._fetching is not None:
            self._fetching.cancel()
            self._fetching = None
        self._source.pause(self._tracker.partitions())
        reserve = min(5.0, timeout / 4)
        stuck, self._stuck = self._stuck, []
        self._in_flight -= len(stuck)
        drained = await self._wait_for(lambda: self._in_flight == 0, timeout - reserve)
        if not drained:
            self._release(await self._scheduler.cancel_all(), "shutdown timeout")
        if stuck:
            metrics.RECORDS_RELEASED.labels("could not be finished").inc(len(stuck))
        for work in stuck:
            self._log.info("record_released", **self._fields(work), reason="could not be finished")
        try:
            await asyncio.wait_for(self.commit(), reserve)
        except TimeoutError:
            self._log.warning(
                "commit_failed", reason="broker did not answer before the shutdown timeout"
            )
        return drained

    def _release(self, works: list[Work], reason: str) -> None:
        """Records given up without an outcome: whoever owns the partition next processes them."""
        self._in_flight -= len(works)
        self._wake.set()  # room was freed: a loop paused as full must look again
        metrics.RECORDS_RELEASED.labels(reason).inc(len(works))
        for work in works:
            self._log.info("record_released", **self._fields(work), reason=reason)

    async def _wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        self._progress = progress = asyncio.Event()
        try:
            async with asyncio.timeout(max(timeout, 0)):
                while not condition():
                    progress.clear()
                    await progress.wait()
        except TimeoutError:
            return condition()
        finally:
            self._progress = None
        return True


def _names(partitions: Collection[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)
