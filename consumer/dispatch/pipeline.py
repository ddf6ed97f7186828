"""One record's way through: payload -> route -> handlers -> one outcome line.

A handler's answer is turned into the record's next move by ``decision.decide``; this
module only carries that out: it calls handlers (with the quick in-process retries and
the time limit: ``calls``), writes retry tiers and dead letters, counts metrics and logs
the one ``record_processed`` line, with the record's trace ids. Every path ends in exactly
one line; a failure of this code itself dead-letters the record with the reason, so
nothing is ever acknowledged silently.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import structlog

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.config.sections import RetrySettings
from consumer.dispatch.calls import HandlerCalls, Run
from consumer.dispatch.decision import DeadLetter, NextHandler, Settle, ToTier, decide
from consumer.dispatch.intake import describe
from consumer.dispatch.routing import Router
from consumer.engine.work import Work
from consumer.errors import IgnoredRecord, RecordError
from consumer.handlers import Clients, RecordMeta
from consumer.hold import Hold
from consumer.outcomes import DeadLettered, RecordOutcome, Retried, Skipped
from consumer.redelivery.headers import Trail
from consumer.redelivery.sidetopics import SideTopics
from consumer.tracing import Tracer, trace_fields

__all__ = ["Pipeline"]


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
        tracer: Tracer | None = None,
    ) -> None:
        self._router = router
        self._log = log
        self._side = side
        self._tiers = side.tiers
        # Every final outcome feeds the dead-letter guard's window.
        self._guard = side.guard
        # A call is the last try when no tier follows the one the record sat in.
        self._top_tier = max((tier.index for tier in self._tiers), default=-1)
        # A memo is ours only on a record read back from a tier: on any other, its header
        # is whatever a producer wrote (a cover URL to set, for a start).
        self._tier_topics = frozenset(tier.topic for tier in self._tiers)
        self._calls = HandlerCalls(
            clients,
            log,
            retry,
            handler_timeout,
            hold if hold is not None else Hold(),
            clock,
            rng,
        )
        self._clock = clock
        self._tracer = tracer if tracer is not None else Tracer(enabled=False)
        self._tracing = self._tracer.active  # read per record: an attribute, not a property
        # One metrics child per (outcome, handler, topic), resolved once: the few
        # combinations need no labels() call per record.
        self._processed: dict[tuple[str, str | None, str], Any] = {}
        #: When a record last reached its outcome (epoch seconds; a gauge reads it on scrape).
        #: Read off the wall clock then, not derived later: a clock step or a suspended host
        #: must not make a stalled replica look as if it had just finished a record.
        self.last_outcome_at = 0.0

    async def process(self, work: Work) -> RecordOutcome:
        started = self._clock.monotonic()
        record = work.record
        run = Run(_context(work))
        try:
            if self._tracing:
                with self._tracer.record(
                    record.headers,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    asset_id=run.context.get("asset_id"),
                ):
                    outcome = await self._outcome(work, run)
            else:  # the hot path: not even a no-op context manager
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
        self._guard.observe(isinstance(outcome, DeadLettered))
        self._log_outcome(outcome, run, started)
        return outcome

    async def _outcome(self, work: Work, run: Run) -> RecordOutcome:
        """The payload's route, run handler by handler as ``decide`` says (one frame for
        both: this is the path every record takes)."""
        record, payload = work.record, work.payload
        trail = Trail.of(
            record.topic, record.partition, record.offset, record.timestamp, record.headers
        )
        if isinstance(payload, RecordError):
            if isinstance(payload, IgnoredRecord):
                return Skipped(payload.reason)
            # Not JSON or not an event: no retry can help; the DLQ keeps the bytes.
            error = type(payload).__name__
            return await self._side.dead_letter(record, trail, payload.reason, error, None, 0)
        route = self._router.route(payload)
        if route is None:
            return Skipped(
                f"no route for event_type={payload.event_type} status={payload.status} "
                f"cover_type={payload.cover_type}"
            )
        meta = RecordMeta(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.timestamp,
            trail.first_seen_ms,
        )
        if trail.memo and record.topic in self._tier_topics:
            run.memo = _memo(trail.memo)
        steps, tiers = route.steps, self._tiers
        for index in range(min(trail.step, len(steps) - 1), len(steps)):
            resumed = index == trail.step
            step = steps[index]
            run.handler, run.error = step.name, None
            sat_in = trail.tier if resumed else -1  # the tier this record came back from
            outcome = await self._calls.call(
                step,
                payload,
                meta,
                run,
                trail.attempt if resumed else 0,
                last_tier=sat_in >= self._top_tier,
            )
            decision = decide(outcome, index, len(steps), tiers, sat_in)
            if isinstance(decision, Settle):
                return decision.outcome
            if isinstance(decision, NextHandler):
                continue
            if isinstance(decision, ToTier):
                return await self._side.retry(
                    record,
                    trail,
                    decision.tier,
                    index,
                    run.attempt,
                    decision.reason,
                    run.handler,
                    memo=run.memo,
                )
            return await self._dead_letter(record, trail, decision, run)
        raise AssertionError("decide() ends a route at its last handler")

    async def _dead_letter(
        self, record: Any, trail: Trail, decision: DeadLetter, run: Run
    ) -> DeadLettered:
        return await self._side.dead_letter(
            record, trail, decision.reason, decision.error, run.handler, run.attempt
        )

    def _log_outcome(self, outcome: RecordOutcome, run: Run, started: float) -> None:
        kind, handler, topic = outcome.kind, run.handler, run.context["topic"]
        child = self._processed.get((kind, handler, topic))
        if child is None:
            child = metrics.RECORDS_PROCESSED.labels(kind, handler or "none", topic)
            self._processed[(kind, handler, topic)] = child
        child.inc()
        now = self._clock.monotonic()
        self.last_outcome_at = self._clock.wall()
        # Handler notes first: the record's context and outcome must win over a same-named note.
        # (A union and item stores build this dict at two thirds of a literal's cost.)
        fields = run.notes | run.context
        fields["outcome"] = kind
        fields["handler"] = handler
        fields["attempt"] = run.attempt
        fields["duration_ms"] = round((now - started) * 1000, 3)
        fields["reason"] = outcome.reason
        write = self._log.info
        if isinstance(outcome, DeadLettered):
            fields["error"] = outcome.error
            if run.error is not None:
                fields["exc_info"] = run.error
            write = self._log.error
        elif isinstance(outcome, Retried):
            fields["retry_topic"] = outcome.topic
            fields["due"] = round(outcome.due, 3)
        try:
            write("record_processed", **fields)
        except TypeError:
            # A note the call cannot take (a handler may write ``ctx.notes`` directly, or
            # from a task that outlives its call) is left out rather than leave the record
            # without its line, stuck. Checked only when the call refuses: no cost per record.
            write("record_processed", **_callable(fields))


def _context(work: Work) -> dict[str, Any]:
    """The fields on every line about the record: where it is, what event, its trace ids
    (looked for only on a record with headers)."""
    context = work.coordinates()
    context.update(describe(work.payload))
    if work.record.headers:  # most records have none
        context.update(trace_fields(work.record.headers))
    return context


# The logger call's own argument names: a note so named (or one not named by text) makes
# the call raise TypeError before it writes anything.
_NOT_NOTES = frozenset({"event", "self"})


def _callable(fields: dict[Any, Any]) -> dict[str, Any]:
    """The fields a logger call can take as keywords."""
    return {k: v for k, v in fields.items() if isinstance(k, str) and k not in _NOT_NOTES}


def _memo(text: str) -> dict[str, Any]:
    """The memo a retry tier carried back; an unreadable one is no memo (the handlers
    then decide from VOD's state alone)."""
    try:
        memo = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return memo if isinstance(memo, dict) else {}
