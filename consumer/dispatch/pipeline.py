"""One record's way through: payload -> route -> handlers -> one outcome line.

A handler's answer is turned into the record's next move by ``decision.decide``; this
module only carries that out: it calls handlers (with the quick in-process retries and
the time limit), writes retry tiers and dead letters, counts metrics and logs the one
``record_processed`` line. Every path ends in exactly one line; a failure of this code
itself dead-letters the record with the reason, so nothing is ever acknowledged silently.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.config.sections import RetrySettings
from consumer.dispatch.decision import (
    DeadLetter,
    NextHandler,
    Settle,
    ToTier,
    decide,
    failure,
    quick_retry_delay,
)
from consumer.dispatch.intake import describe
from consumer.dispatch.routing import Route, Router, Step
from consumer.dispatch.watchdog import Watchdog
from consumer.engine.work import Work
from consumer.errors import IgnoredRecord, RecordError
from consumer.events import Event
from consumer.handlers import Clients, Context, RecordMeta
from consumer.hold import Hold, Reason
from consumer.outcomes import (
    DeadLettered,
    Failed,
    Outcome,
    RecordOutcome,
    Retried,
    Retry,
    Skipped,
)
from consumer.redelivery.headers import Trail
from consumer.redelivery.sidetopics import SideTopics

__all__ = ["Pipeline"]


@dataclass(slots=True)
class _Run:
    """One record's run through its route: what every handler call shares, and what the
    outcome line reports."""

    context: dict[str, Any]  # the fields identifying the record on every line
    notes: dict[str, Any] = field(default_factory=dict)  # what handlers annotate
    handler: str | None = None
    attempt: int = 0
    error: BaseException | None = None


class Pipeline:
    def __init__(
        self,
        router: Router,
        clients: Clients,
        log: structlog.typing.FilteringBoundLogger,
        side: SideTopics,
        retry: RetrySettings,
        handler_timeout: float = 120.0,
        hold: Hold | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._router = router
        self._clients = clients
        self._log = log
        self._side = side
        # A call is the last try when no tier follows the one the record sat in.
        self._top_tier = max((tier.index for tier in side.tiers), default=-1)
        self._retry = retry
        self._watchdog = Watchdog(handler_timeout)
        # A systemic failure (VOD refused our key) is not the event's: it waits out the hold.
        self._hold = hold if hold is not None else Hold()
        self._clock = clock
        # One metrics child per (outcome, handler), resolved once: the few combinations
        # need no labels() call per record.
        self._processed: dict[tuple[str, str | None], Any] = {}
        self._handler_seconds: dict[str, Any] = {}
        self._rng = rng
        #: When a record last reached its outcome (epoch seconds; a gauge reads it on scrape).
        self.last_outcome_at = 0.0

    async def process(self, work: Work) -> RecordOutcome:
        started = self._clock.monotonic()
        record = work.record
        run = _Run({**work.coordinates(), **describe(work.payload)})
        try:
            outcome = await self._outcome(work, run)
        except Exception as exc:
            # A bug in this layer (a header it cannot read, say): the record still ends in
            # the dead-letter topic with the reason, counted by the guard. If even that
            # write fails, the engine holds the record uncommitted.
            run.error = exc
            fresh = Trail(record.topic, record.partition, record.offset, record.timestamp)
            outcome = await self._side.dead_letter(
                record,
                fresh,
                f"internal error: {type(exc).__name__}: {exc}",
                type(exc).__name__,
                run.handler,
                run.attempt,
            )
        self._side.observe(outcome)
        self._log_outcome(outcome, run, started)
        return outcome

    async def _outcome(self, work: Work, run: _Run) -> RecordOutcome:
        record, payload = work.record, work.payload
        trail = Trail.of(
            record.topic, record.partition, record.offset, record.timestamp, record.headers
        )
        if isinstance(payload, IgnoredRecord):
            return Skipped(payload.reason)
        if isinstance(payload, RecordError):
            # Not JSON or not an event: no retry can help; the DLQ keeps the bytes.
            error = type(payload).__name__
            return await self._side.dead_letter(record, trail, payload.reason, error, None, 0)
        route = self._router.route(payload)
        if route is None:
            return Skipped(
                f"no route for event_type={payload.event_type} status={payload.status} "
                f"cover_type={payload.cover_type}"
            )
        return await self._run_route(route, payload, work, trail, run)

    async def _run_route(
        self, route: Route, event: Event, work: Work, trail: Trail, run: _Run
    ) -> RecordOutcome:
        record = work.record
        meta = RecordMeta(
            record.topic, record.partition, record.offset, record.key, record.timestamp
        )
        steps, tiers = route.steps, self._side.tiers
        for index in range(min(trail.step, len(steps) - 1), len(steps)):
            resumed = index == trail.step
            step = steps[index]
            run.handler, run.error = step.name, None
            sat_in = trail.tier if resumed else -1  # the tier this record came back from
            outcome = await self._call(
                step,
                event,
                meta,
                run,
                trail.attempt if resumed else 0,
                last_tier=sat_in >= self._top_tier,
            )
            decision = decide(outcome, index, len(steps), tiers, sat_in)
            if isinstance(decision, NextHandler):
                continue
            if isinstance(decision, Settle):
                return decision.outcome
            if isinstance(decision, ToTier):
                return await self._side.retry(
                    record, trail, decision.tier, index, run.attempt, decision.reason
                )
            return await self._dead_letter(record, trail, decision, run)
        raise AssertionError("decide() ends a route at its last handler")

    async def _dead_letter(
        self, record: Any, trail: Trail, decision: DeadLetter, run: _Run
    ) -> DeadLettered:
        return await self._side.dead_letter(
            record, trail, decision.reason, decision.error, run.handler, run.attempt
        )

    async def _call(
        self,
        step: Step,
        event: Event,
        meta: RecordMeta,
        run: _Run,
        attempts_before: int,
        last_tier: bool,
    ) -> Outcome:
        """Call one handler, with the quick in-process retries."""
        policy, clock = self._retry, self._clock
        deadline = clock.monotonic() + policy.quick_budget
        quick = 0
        while True:
            quick += 1
            run.attempt = attempts_before + quick
            last_try = last_tier and quick == policy.quick_attempts
            outcome = await self._call_once(step, event, meta, run, last_try)
            if not isinstance(outcome, Retry):
                return outcome
            delay = quick_retry_delay(
                outcome,
                quick,
                policy.quick_attempts,
                policy.quick_base_delay,
                policy.quick_max_delay,
                deadline - clock.monotonic(),
                self._rng,
            )
            if delay is None:
                return outcome
            await clock.sleep(delay)

    async def _call_once(
        self, step: Step, event: Event, meta: RecordMeta, run: _Run, last_try: bool
    ) -> Outcome:
        while True:
            ctx = Context(
                self._log,
                run.context,
                meta,
                self._clients,
                run.notes,
                run.attempt,
                last_try,
                step.name,
            )
            began = self._clock.monotonic()
            try:
                # A handler past its time is cancelled: a TimeoutError, so a transient failure.
                outcome = await self._watchdog.call(step.handler(event, ctx))
            except Exception as exc:
                run.error = exc
                if getattr(exc, "systemic", False) and Reason.CIRCUIT in self._hold:
                    # Every record would fail alike: this one stays in flight, uncommitted,
                    # is not charged an attempt, and is called again once VOD is healthy.
                    await self._hold.until_clear(Reason.CIRCUIT)
                    continue
                return failure(exc, run.attempt, self._retry.unexpected_attempts)
            finally:
                self._durations(step.name).observe(self._clock.monotonic() - began)
            if not isinstance(outcome, Outcome):  # user code may return anything
                return Failed(f"handler returned {type(outcome).__name__}, not an outcome")
            return outcome

    def _durations(self, handler: str) -> Any:
        child = self._handler_seconds.get(handler)
        if child is None:
            child = self._handler_seconds[handler] = metrics.HANDLER_SECONDS.labels(handler)
        return child

    def _count(self, outcome: str, handler: str | None) -> None:
        child = self._processed.get((outcome, handler))
        if child is None:
            child = metrics.RECORDS_PROCESSED.labels(outcome, handler or "none")
            self._processed[(outcome, handler)] = child
        child.inc()
        self.last_outcome_at = self._clock.wall()

    def _log_outcome(self, outcome: RecordOutcome, run: _Run, started: float) -> None:
        self._count(outcome.kind, run.handler)
        # Handler notes first: the record's context and outcome must win over a same-named note.
        # (A union and item stores build this dict at two thirds of a literal's cost.)
        fields = run.notes | run.context
        fields["outcome"] = outcome.kind
        fields["handler"] = run.handler
        fields["attempt"] = run.attempt
        fields["duration_ms"] = round((self._clock.monotonic() - started) * 1000, 3)
        fields["reason"] = outcome.reason
        if isinstance(outcome, DeadLettered):
            fields["error"] = outcome.error
            if run.error is not None:
                fields["exc_info"] = run.error
            self._log.error("record_processed", **fields)
            return
        if isinstance(outcome, Retried):
            fields["retry_topic"] = outcome.topic
            fields["due"] = round(outcome.due, 3)
        self._log.info("record_processed", **fields)
