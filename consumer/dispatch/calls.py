"""Calling one handler for one record: the quick in-process retries, the time limit, and
the wait a systemic failure (VOD refusing our key) makes instead of charging an attempt.

``Run`` is what every call of one record's run shares (its context, the handlers' notes
and memo, the handler and attempt the outcome line reports); ``HandlerCalls`` turns a
handler's answer or exception into an ``Outcome`` and never lets one escape, except a
cancellation from outside (shutdown or revoke giving up on the record).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import structlog

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.config.sections import RetrySettings
from consumer.dispatch.decision import failure, quick_retry_delay
from consumer.dispatch.routing import Step
from consumer.dispatch.watchdog import Watchdog
from consumer.events import Event
from consumer.handlers import Clients, Context, RecordMeta
from consumer.hold import Hold, Reason
from consumer.outcomes import Failed, Outcome, Retry

__all__ = ["HandlerCalls", "Run"]


class Run:
    """One record's run through its route: what every handler call shares, and what the
    outcome line reports. (A plain class: a dataclass's default factories cost two calls
    per record.)"""

    __slots__ = ("attempt", "context", "error", "handler", "memo", "notes")

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context  # the fields identifying the record on every line
        self.notes: dict[str, Any] = {}  # what handlers annotate
        self.memo: dict[str, Any] = {}  # what they keep across calls
        self.handler: str | None = None
        self.attempt = 0
        self.error: BaseException | None = None


class HandlerCalls:
    def __init__(
        self,
        clients: Clients,
        log: structlog.typing.FilteringBoundLogger,
        retry: RetrySettings,
        handler_timeout: float,
        hold: Hold,
        clock: Clock = SYSTEM_CLOCK,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._clients = clients
        self._log = log
        self._retry = retry
        self._watchdog = Watchdog(handler_timeout)
        # A systemic failure (VOD refused our key) is not the event's: it waits out the hold.
        self._hold = hold
        self._clock = clock
        self._rng = rng
        # One metrics child per handler, resolved once: no labels() call per record.
        self._handler_seconds: dict[str, Any] = {}

    async def call(
        self,
        step: Step,
        event: Event,
        meta: RecordMeta,
        run: Run,
        attempts_before: int,
        last_tier: bool,
    ) -> Outcome:
        """Call one handler, with the quick in-process retries (one frame for the call and
        its retries: every record takes this path)."""
        policy, clock = self._retry, self._clock
        deadline = clock.monotonic() + policy.quick_budget
        seconds = self._handler_seconds.get(step.name)
        if seconds is None:
            seconds = self._durations(step.name)
        quick = 1
        while True:
            run.attempt = attempts_before + quick
            ctx = Context(
                self._log,
                run.context,
                meta,
                self._clients,
                run.notes,
                run.attempt,
                last_tier and quick == policy.quick_attempts,
                step.name,
                run.memo,
                clock,
            )
            began = clock.monotonic()
            try:
                # A handler past its time is cancelled: a TimeoutError, so a transient failure.
                outcome = await self._watchdog.call(step.handler(event, ctx))
            except BaseException as exc:
                if _cancelled_from_outside(exc):
                    raise  # shutdown or revoke gave up on this record: not the handler's doing
                # Any other BaseException is the handler's own (a CancelledError it raised
                # itself, SystemExit, ...): one failure like another, never a lost worker.
                run.error = exc
                if getattr(exc, "systemic", False) and Reason.CIRCUIT in self._hold:
                    # Every record would fail alike: this one stays in flight, uncommitted,
                    # is not charged an attempt, and is called again once VOD is healthy.
                    await self._hold.until_clear(Reason.CIRCUIT)
                    continue
                outcome = failure(exc, run.attempt, policy.unexpected_attempts)
            finally:
                seconds.observe(clock.monotonic() - began)
            if not isinstance(outcome, Retry):
                if not isinstance(outcome, Outcome):  # user code may return anything
                    return Failed(f"handler returned {type(outcome).__name__}, not an outcome")
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
            quick += 1

    def _durations(self, handler: str) -> Any:
        child = self._handler_seconds[handler] = metrics.HANDLER_SECONDS.labels(handler)
        return child


def _cancelled_from_outside(exc: BaseException) -> bool:
    """Whether ``exc`` is this task being cancelled (``Task.cancel``), rather than a
    CancelledError a handler raised (a time limit's is a TimeoutError by now)."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
