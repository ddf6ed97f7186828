"""consumer.guard.DeadLetterGuard: the share of dead letters over a sliding window.

A tripped guard's ``admit()`` never returns; ``asyncio.wait_for`` only bounds how long
a test looks at it.
"""

from __future__ import annotations

import asyncio

from consumer.hold import Hold, Reason
from consumer.redelivery.guard import DeadLetterGuard

LOOK = 0.05  # seconds: how long a test watches an admit that should never return


class Trips:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


def guard(
    trips: Trips, window: int = 10, threshold: float = 0.5, min_records: int = 4
) -> DeadLetterGuard:
    return DeadLetterGuard(window, threshold, min_records, on_trip=trips)


def feed(guard: DeadLetterGuard, outcomes: str) -> None:
    """``outcomes``: one letter per final outcome, ``D`` dead-lettered, ``.`` anything else."""
    for outcome in outcomes:
        guard.observe(outcome == "D")


async def admitted(guard: DeadLetterGuard) -> bool:
    try:
        await asyncio.wait_for(guard.admit(), LOOK)
    except TimeoutError:
        return False
    return True


async def test_below_min_records_every_dead_letter_is_admitted() -> None:
    trips = Trips()
    g = guard(trips, min_records=4)

    for _ in range(3):  # with the one being admitted: 1, 2, 3 records seen, all dead
        assert await admitted(g)
        g.observe(True)

    assert trips.reasons == []
    assert g.tripped is False


async def test_reaching_min_records_with_a_dead_share_over_the_threshold_trips_once() -> None:
    trips = Trips()
    g = guard(trips, min_records=4)
    feed(g, "DDD")

    assert not await admitted(g)  # 4 of 4 would be dead
    assert g.tripped is True
    assert len(trips.reasons) == 1
    assert trips.reasons[0] == "4 of the last 4 records would be dead letters"


async def test_a_dead_share_equal_to_the_threshold_is_admitted() -> None:
    trips = Trips()
    g = guard(trips, threshold=0.5, min_records=4)
    feed(g, "D..")

    assert await admitted(g)  # 2 of 4: exactly the threshold
    assert trips.reasons == []


async def test_a_dead_share_just_over_the_threshold_trips() -> None:
    trips = Trips()
    g = guard(trips, threshold=0.5, min_records=4)
    feed(g, "DD.")

    assert not await admitted(g)  # 3 of 4
    assert len(trips.reasons) == 1


async def test_old_dead_letters_fall_out_of_the_window() -> None:
    trips = Trips()
    g = guard(trips, window=4, threshold=0.5, min_records=4)
    feed(g, "DDD.")
    assert g.share_with_one_more() == (3, 4)  # would trip now

    feed(g, "..")  # two of the three dead letters slide out

    assert g.share_with_one_more() == (1, 4)
    assert await admitted(g)
    assert trips.reasons == []


def test_dead_letters_after_a_full_window_of_good_outcomes_are_counted() -> None:
    g = guard(Trips(), window=4)
    feed(g, "....")  # good outcomes only: nothing dead to slide out later

    feed(g, "DD")

    assert g.share_with_one_more() == (3, 4)


async def test_after_enough_good_outcomes_a_tripping_share_is_admitted_again() -> None:
    trips = Trips()
    g = guard(trips, window=4, threshold=0.5, min_records=1)
    feed(g, "DDDD" + "....")  # a burst of dead letters, then a full window of good outcomes

    assert await admitted(g)
    assert trips.reasons == []


async def test_once_tripped_every_later_admit_blocks_without_tripping_again() -> None:
    trips = Trips()
    g = guard(trips, window=4, threshold=0.5, min_records=4)
    feed(g, "DDD")
    assert not await admitted(g)

    feed(g, "....")  # even a clean window does not reopen a tripped guard

    assert g.share_with_one_more() == (1, 4)
    assert not await admitted(g)
    assert not await admitted(g)
    assert len(trips.reasons) == 1


async def test_tripping_holds_the_daemon_naming_the_share_that_tripped_it() -> None:
    hold = Hold()
    g = DeadLetterGuard(10, 0.5, 4, hold=hold)
    feed(g, "DDD")

    assert not await admitted(g)

    assert Reason.GUARD in hold
    assert hold.why() == "dead-letter guard tripped: 4 of the last 4 records would be dead letters"
