"""One record's way through: decoded event -> route -> handlers -> one outcome line.

A handler that asks to retry is called again in process a few times (backoff with
full jitter, holding only its asset's queue); after that the record goes to a
delayed-retry tier and, when it comes back, the route resumes at that handler.
Past the last tier the next handler of the route takes over, or the record is
dead-lettered. Every path ends in exactly one ``record_processed`` line; nothing
here raises for a bad record or a failing handler (only cancellation goes through).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from consumer import metrics
from consumer.config import RetrySettings
from consumer.errors import IgnoredRecord, RecordError
from consumer.events import Event
from consumer.handlers import Clients, Context, RecordMeta
from consumer.headers import Trail
from consumer.outcomes import (
    DeadLettered,
    Failed,
    Handover,
    Outcome,
    RecordOutcome,
    Retried,
    Retry,
    Skipped,
)
from consumer.retrying import backoff, is_transient, next_tier
from consumer.routing import Route, Router, Step
from consumer.sidetopics import SideTopics
from consumer.watchdog import Watchdog
from consumer.work import Work

__all__ = ["Pipeline"]


@dataclass(frozen=True, slots=True)
class _Held:
    """A handler met a systemic failure (e.g. VOD refused our key): not the event's fault."""

    until_healthy: Callable[[], Awaitable[None]]


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
        until_healthy: Callable[[], Awaitable[None]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        # Waits until whatever made a failure systemic is healthy again (the VOD circuit).
        self._until_healthy = until_healthy
        self._sleep = sleep
        # One metrics child per (outcome, handler): labels() per record costs a dict lookup
        # and a lock; the few combinations are resolved once.
        self._processed: dict[tuple[str, str | None], Any] = {}
        self._handler_seconds: dict[str, Any] = {}
        self._rng = rng
        #: When a record last reached its outcome (epoch seconds; a gauge reads it on scrape).
        self.last_outcome_at = 0.0

    async def process(self, work: Work) -> RecordOutcome:
        started = time.perf_counter()
        record, decoded = work.record, work.decoded
        context = work.context()
        trail = Trail.of(
            record.topic, record.partition, record.offset, record.timestamp, record.headers
        )
        run = _Run(context)
        outcome: RecordOutcome
        if isinstance(decoded, IgnoredRecord):
            outcome = Skipped(decoded.reason)
        elif isinstance(decoded, RecordError):
            # Not JSON or not an event: no retry can help; the DLQ keeps the bytes.
            error = type(decoded).__name__
            outcome = await self._side.dead_letter(record, trail, decoded.reason, error, None, 0)
        elif (route := self._router.route(decoded)) is None:
            outcome = Skipped(
                f"no route for event_type={decoded.event_type} status={decoded.status} "
                f"cover_type={decoded.cover_type}"
            )
        else:
            outcome = await self._run_route(route, decoded, work, trail, run)
        self._side.observe(outcome)
        self._log_outcome(outcome, run, started)
        return outcome

    async def _run_route(
        self,
        route: Route,
        event: Event,
        work: Work,
        trail: Trail,
        run: _Run,
    ) -> RecordOutcome:
        record = work.record
        meta = RecordMeta(
            record.topic, record.partition, record.offset, record.key, record.timestamp
        )
        steps = route.steps
        handed_over = ""
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
            if isinstance(outcome, Handover):
                handed_over = outcome.reason
                continue
            if isinstance(outcome, Failed):
                return await self._side.dead_letter(
                    record, trail, outcome.reason, outcome.error, step.name, run.attempt
                )
            if not isinstance(outcome, Retry):
                return outcome
            tier = next_tier(self._side.tiers, sat_in, outcome.after)
            if tier is not None:
                return await self._side.retry(
                    record, trail, tier, index, run.attempt, outcome.reason
                )
            if index + 1 == len(steps):
                return await self._side.dead_letter(
                    record,
                    trail,
                    f"retries exhausted: {outcome.reason}",
                    outcome.error,
                    step.name,
                    run.attempt,
                )
        return await self._side.dead_letter(
            record,
            trail,
            f"every handler handed over; last: {handed_over}",
            None,
            run.handler,
            run.attempt,
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
        policy = self._retry
        deadline = time.monotonic() + policy.quick_budget
        outcome: Outcome = Handover("not called")
        for quick in range(1, policy.quick_attempts + 1):
            run.attempt = attempts_before + quick
            last_try = last_tier and quick == policy.quick_attempts
            called = await self._call_once(step, event, meta, run, last_try)
            while isinstance(called, _Held):
                # The event stays in flight, uncommitted, and is not charged an attempt.
                await called.until_healthy()
                called = await self._call_once(step, event, meta, run, last_try)
            outcome = called
            if not isinstance(outcome, Retry):
                return outcome
            delay = max(
                outcome.after or 0.0,
                backoff(quick, policy.quick_base_delay, policy.quick_max_delay, self._rng),
            )
            if quick == policy.quick_attempts or time.monotonic() + delay > deadline:
                break
            await self._sleep(delay)
        return outcome

    async def _call_once(
        self,
        step: Step,
        event: Event,
        meta: RecordMeta,
        run: _Run,
        last_try: bool,
    ) -> Outcome | _Held:
        ctx = Context(
            self._log, run.context, meta, self._clients, run.notes, run.attempt, last_try, step.name
        )
        began = time.perf_counter()
        try:
            # A handler past its time is cancelled: a TimeoutError, so a transient failure.
            with self._watchdog.watch():
                outcome = await step.handler(event, ctx)
        except Exception as exc:
            run.error = exc
            reason, error = f"{type(exc).__name__}: {exc}", type(exc).__name__
            if getattr(exc, "systemic", False) and self._until_healthy is not None:
                return _Held(self._until_healthy)
            if is_transient(exc) or run.attempt < self._retry.unexpected_attempts:
                # A throttled call says when to come back (VOD: 2-5 s).
                return Retry(reason, after=getattr(exc, "retry_after", None), error=error)
            return Failed(f"unexpected error, {run.attempt} attempts: {reason}", error)
        finally:
            self._durations(step.name).observe(time.perf_counter() - began)
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
        self.last_outcome_at = time.time()

    def _log_outcome(self, outcome: RecordOutcome, run: _Run, started: float) -> None:
        self._count(outcome.kind, run.handler)
        # Handler notes first: the record's context and outcome must win over a same-named note.
        fields: dict[str, Any] = {
            **run.notes,
            **run.context,
            "outcome": outcome.kind,
            "handler": run.handler,
            "attempt": run.attempt,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "reason": outcome.reason,
        }
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
