"""What a handler's answer means for the record: pure functions of plain data, no effects.

The pipeline asks, then carries the answer out. ``decide`` maps a handler's outcome to
the record's next move; ``failure`` maps an exception a handler raised to an outcome;
``quick_retry_delay`` says whether a ``Retry`` is tried again in process, and when.

    Done, Skipped                         -> Settle: the route ends with it
    Handover, a handler after this one    -> NextHandler
    Handover, the last handler            -> DeadLetter "every handler handed over"
    Failed                                -> DeadLetter with its reason
    Retry, a later tier left              -> ToTier (the first whose delay covers ``after``)
    Retry, no tier left, a handler after  -> NextHandler "retries exhausted"
    Retry, no tier left, the last handler -> DeadLetter "retries exhausted"
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consumer.outcomes import Done, Failed, Handover, Outcome, Retry, Skipped
from consumer.redelivery.policy import backoff, is_permanent, is_transient, next_tier
from consumer.redelivery.topology import Tier

__all__ = [
    "DeadLetter",
    "Decision",
    "NextHandler",
    "Settle",
    "ToTier",
    "decide",
    "failure",
    "quick_retry_delay",
]


@dataclass(frozen=True, slots=True)
class Settle:
    outcome: Done | Skipped


@dataclass(frozen=True, slots=True)
class NextHandler:
    reason: str


@dataclass(frozen=True, slots=True)
class ToTier:
    tier: Tier
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    error: str | None = None


Decision = Settle | NextHandler | ToTier | DeadLetter

# Built once: ``A | B`` written in the call makes a new union object on every record.
_FINAL = Done | Skipped


def decide(outcome: Outcome, step: int, steps: int, tiers: Sequence[Tier], sat_in: int) -> Decision:
    """The record's next move after handler ``step`` (0-based, of ``steps``) answered
    ``outcome``; ``sat_in`` is the tier the record came back from (-1: none)."""
    last = step + 1 >= steps
    if isinstance(outcome, _FINAL):
        return Settle(outcome)
    if isinstance(outcome, Handover):
        if last:
            return DeadLetter(f"every handler handed over; last: {outcome.reason}")
        return NextHandler(outcome.reason)
    if isinstance(outcome, Failed):
        return DeadLetter(outcome.reason, outcome.error)
    tier = next_tier(tiers, sat_in, outcome.after)
    if tier is not None:
        return ToTier(tier, outcome.reason)
    if last:
        return DeadLetter(f"retries exhausted: {outcome.reason}", outcome.error)
    return NextHandler(f"retries exhausted: {outcome.reason}")


def failure(exc: BaseException, attempt: int, unexpected_attempts: int) -> Retry | Failed:
    """What a handler's exception counts as: a failure at once if it says it is permanent,
    a retry while it is transient or unexpected ones are left, else a failure naming the
    attempts."""
    error = type(exc).__name__
    reason = f"{error}: {exc}"
    if is_permanent(exc):
        return Failed(f"permanent error: {reason}", error)
    if is_transient(exc) or attempt < unexpected_attempts:
        # A throttled call says when to come back (VOD: 2-5 s).
        return Retry(reason, after=getattr(exc, "retry_after", None), error=error)
    return Failed(f"unexpected error, {attempt} attempts: {reason}", error)


def quick_retry_delay(
    outcome: Retry,
    quick: int,
    attempts: int,
    base: float,
    cap: float,
    time_left: float,
    rng: Callable[[], float],
) -> float | None:
    """Seconds to wait before quick try ``quick + 1``; None when the record goes on to a
    tier instead (attempts used up, or the wait would pass the budget's ``time_left``)."""
    delay = max(outcome.after or 0.0, backoff(quick, base, cap, rng))
    if quick >= attempts or delay > time_left:
        return None
    return delay
