"""consumer.dispatch.decision: what a handler's answer means next, as a table."""

from __future__ import annotations

import math

import pytest

from consumer.dispatch.decision import (
    DeadLetter,
    Decision,
    NextHandler,
    Settle,
    ToTier,
    decide,
    failure,
    quick_retry_delay,
)
from consumer.errors import TransientError
from consumer.outcomes import DONE, Failed, Handover, Outcome, Retry, Skipped
from consumer.redelivery.topology import Tier
from consumer.vod.errors import VodPermanentError

T60 = Tier(0, 60, "t.retry.1m")
T600 = Tier(1, 600, "t.retry.10m")
TIERS = (T60, T600)

# (outcome, step, steps, sat_in) -> decision; steps are 0-based, sat_in -1 = never in a tier.
TABLE: list[tuple[str, Outcome, int, int, int, Decision]] = [
    ("done settles", DONE, 0, 2, -1, Settle(DONE)),
    ("skipped settles", Skipped("cover present"), 1, 2, 0, Settle(Skipped("cover present"))),
    ("handover passes on", Handover("no snapshot"), 0, 2, -1, NextHandler("no snapshot")),
    (
        "handover by the last handler dead-letters",
        Handover("no snapshot"),
        1,
        2,
        -1,
        DeadLetter("every handler handed over; last: no snapshot"),
    ),
    (
        "failed dead-letters with its error",
        Failed("asset deleted", "VodPermanentError"),
        0,
        2,
        -1,
        DeadLetter("asset deleted", "VodPermanentError"),
    ),
    ("a first retry goes to the first tier", Retry("busy"), 0, 1, -1, ToTier(T60, "busy")),
    ("a retry from tier 0 goes to tier 1", Retry("busy"), 0, 1, 0, ToTier(T600, "busy")),
    (
        "after covers the wait: the first tier long enough",
        Retry("slow", after=120),
        0,
        1,
        -1,
        ToTier(T600, "slow"),
    ),
    (
        "after longer than every tier: the last one",
        Retry("slow", after=9999),
        0,
        1,
        -1,
        ToTier(T600, "slow"),
    ),
    (
        "no tier left, a handler after: it runs",
        Retry("busy"),
        0,
        2,
        1,
        NextHandler("retries exhausted: busy"),
    ),
    (
        "no tier left on the last handler: dead letter with the retry's error",
        Retry("busy", error="TimeoutError"),
        1,
        2,
        1,
        DeadLetter("retries exhausted: busy", "TimeoutError"),
    ),
]


@pytest.mark.parametrize(
    ("outcome", "step", "steps", "sat_in", "expected"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decide(outcome: Outcome, step: int, steps: int, sat_in: int, expected: Decision) -> None:
    assert decide(outcome, step, steps, TIERS, sat_in) == expected


def test_with_no_tiers_configured_a_retry_goes_straight_to_the_next_handler() -> None:
    assert decide(Retry("busy"), 0, 2, (), -1) == NextHandler("retries exhausted: busy")


class Flaky(Exception):
    retryable = True


class Throttled(TransientError):
    retry_after = 3.5


class Refused(Exception):
    permanent = True


class Odd(Exception):
    permanent = "yes"  # only True means it


@pytest.mark.parametrize(
    ("exc", "attempt", "expected"),
    [
        (TimeoutError("slow"), 9, Retry("TimeoutError: slow", error="TimeoutError")),
        (Flaky("x"), 9, Retry("Flaky: x", error="Flaky")),
        (Throttled("quota"), 9, Retry("Throttled: quota", after=3.5, error="Throttled")),
        (KeyError("k"), 2, Retry("KeyError: 'k'", error="KeyError")),
        (
            KeyError("k"),
            3,
            Failed("unexpected error, 3 attempts: KeyError: 'k'", "KeyError"),
        ),
        (Refused("no such asset"), 1, Failed("permanent error: Refused: no such asset", "Refused")),
        (Odd("o"), 1, Retry("Odd: o", error="Odd")),
        (
            VodPermanentError("VOD.10062", "asset does not exist", 404),
            1,
            Failed(
                "permanent error: VodPermanentError: status=404 error_code=VOD.10062 "
                "error_msg=asset does not exist",
                "VodPermanentError",
            ),
        ),
    ],
    ids=[
        "timeout",
        "marked retryable",
        "retry_after kept",
        "unexpected, attempts left",
        "spent",
        "marked permanent",
        "permanent only when True",
        "VOD's permanent answers",
    ],
)
def test_failure(exc: Exception, attempt: int, expected: Retry | Failed) -> None:
    assert failure(exc, attempt, unexpected_attempts=3) == expected


@pytest.mark.parametrize(
    ("outcome", "quick", "time_left", "expected"),
    [
        (Retry("r"), 1, 10.0, 0.1),  # full jitter: rng 0.5 of min(cap, 0.2 * 2**0)
        (Retry("r"), 2, 10.0, 0.2),
        (Retry("r", after=2.0), 1, 10.0, 2.0),  # the handler's own wait wins when longer
        (Retry("r"), 3, 10.0, None),  # attempts used up
        (Retry("r", after=2.0), 1, 1.9, None),  # the wait would pass the budget
        (Retry("r", after=2.0), 1, 2.0, 2.0),  # exactly within the budget
        (Retry("r", after=math.nan), 1, 10.0, 0.1),  # no wait said: the backoff's
        (Retry("r", after=-5.0), 1, 10.0, 0.1),
        (Retry("r", after="soon"), 1, 10.0, 0.1),  # type: ignore[arg-type]  # a client's value
    ],
)
def test_quick_retry_delay(
    outcome: Retry, quick: int, time_left: float, expected: float | None
) -> None:
    delay = quick_retry_delay(outcome, quick, 3, 0.2, 5.0, time_left, lambda: 0.5)

    assert delay == (pytest.approx(expected) if expected is not None else None)
