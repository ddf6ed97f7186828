"""The VOD quota windows: limits per sliding window, how asks grow, shrink and expire, and
how a share turns into calls (the reserve's slices and the pool)."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from consumer.testing import ManualClock
from consumer.vod.quota import QuotaWindow, Share, widened

BOUND = 2.0  # seconds: only reached when a quota window is broken


async def acquire(window: QuotaWindow, calls: int = 1) -> None:
    """``calls`` acquires, bounded: a window that never lets a call through fails the test."""
    async with asyncio.timeout(BOUND):
        for _ in range(calls):
            await window.acquire()


def window_of(calls: int, clock: ManualClock, quota: int = 100) -> QuotaWindow:
    window = QuotaWindow(quota, clock=clock)
    window.ask(calls)
    return window


async def test_a_limit_allows_that_many_calls_per_sliding_window() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(33, clock)

    await acquire(window, 33)
    assert clock.slept == []
    await acquire(window)  # the 34th waits for the first to leave the window

    assert sum(clock.slept) == pytest.approx(window.window + 1e-3)


def test_a_replica_counts_its_calls_over_vods_window_and_a_margin_for_jitter() -> None:
    assert QuotaWindow(100, window=60).window == pytest.approx(60 * 1.05 + 0.1)
    assert widened(3.0) == pytest.approx(3.25)


async def test_a_full_window_waits_for_its_oldest_call_to_leave() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(2, clock)
    await acquire(window)
    clock.advance(10)
    await acquire(window)

    await acquire(window)

    assert sum(clock.slept) == pytest.approx(window.window - 10 + 1e-3)


async def test_a_caller_waiting_for_a_token_sees_a_limit_grown_at_once() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(1, clock)
    await acquire(window)
    assert window.take() == pytest.approx(window.window / 20)  # looks again soon

    window.ask(2, at_once=True)

    assert window.take() == 0.0


async def test_a_call_leaves_the_window_exactly_one_window_after_it_was_made() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(1, clock)
    await acquire(window)

    clock.advance(window.window)
    await acquire(window)

    assert clock.slept == []


async def test_a_clock_starting_at_zero_lets_the_first_call_through_at_once() -> None:
    clock = ManualClock(now=0.0)
    window = window_of(100, clock)

    await acquire(window)

    assert clock.slept == []


def test_the_first_ask_applies_at_once() -> None:
    window = window_of(50, ManualClock(now=1000.0))

    assert window.limit == 50


def test_asks_apply_at_once_until_one_allows_a_call() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(0, clock)  # e.g. a rebalance revoking nothing, before the first assignment

    window.ask(1)
    assert window.limit == 1
    window.ask(0)
    window.ask(50)
    assert window.limit == 0  # a call was allowed: growing waits a window


def test_a_growing_ask_applies_after_a_full_window_and_a_shrinking_one_at_once() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(50, clock)

    window.ask(100)
    assert window.limit == 50  # the old owner of the new partitions may still be spending
    clock.advance(window.window)
    assert window.limit == 100
    window.ask(25)
    assert window.limit == 25


def test_a_growth_asked_again_every_period_applies_a_window_after_it_was_first_asked() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(50, clock)
    window.ask(100)

    for _ in range(9):  # asked again and again: the window counts from the first time
        clock.advance(window.window / 10)
        window.ask(100)

    assert window.limit == 50
    clock.now = 1000.0 + window.window
    assert window.limit == 100


def test_a_growth_waits_until_every_lower_ask_has_left_the_window() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(50, clock)
    window.ask(100)
    clock.now = 1001.0
    window.ask(60)  # a dip, in force until the next ask
    clock.now = 1002.0
    window.ask(100)

    clock.now = 1000.5 + window.window
    assert window.limit == 60  # the 50 left the window; the 60 has not
    clock.now = 1002.0 + window.window
    assert window.limit == 100


def test_nothing_asked_at_once_makes_a_later_growth_apply_at_once() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(50, clock)
    window.ask(0, at_once=True)

    window.ask(50)

    assert window.limit == 0


def test_a_growth_asked_at_once_applies_at_once() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(50, clock)

    window.ask(100, at_once=True)

    assert window.limit == 100


def test_an_ask_falls_to_its_then_at_its_until() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(80, clock)

    window.ask(80, until=1001.0, then=10)
    clock.advance(0.99)
    assert window.limit == 80
    clock.advance(0.01)
    assert window.limit == 10


def test_an_ask_falls_to_nothing_at_its_until_unless_told_otherwise() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(80, clock)

    window.ask(80, until=1001.0)
    clock.advance(1.0)

    assert window.limit == 0


def test_asking_again_before_the_until_cancels_the_fall() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(80, clock)
    window.ask(80, until=1001.0, then=10)

    clock.advance(0.5)
    window.ask(80, until=1002.0, then=10)
    clock.advance(1.0)

    assert window.limit == 80


def test_after_a_fall_a_growth_waits_a_full_window_like_any() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(80, clock)
    window.ask(80, until=1001.0, then=10)
    clock.advance(2.0)

    window.ask(80)

    assert window.limit == 10
    clock.advance(window.window)
    assert window.limit == 80


async def test_a_throttling_answer_quiets_the_window() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(100, clock)
    window.quiet(3.0)

    await acquire(window)

    assert clock.slept == [3.0]


def test_a_quiet_window_takes_a_call_again_at_the_end_of_its_quiet() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(100, clock)
    window.quiet(3.0)

    clock.advance(3.0)

    assert window.take() == 0.0
    assert window.spent == 1


async def test_a_quiet_window_can_only_lengthen_its_quiet() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(100, clock)
    window.quiet(3.0)
    window.quiet(1.0)

    await acquire(window)

    assert clock.slept == [3.0]


async def test_no_ask_means_no_calls_until_partitions_arrive() -> None:
    clock = ManualClock(now=1000.0)
    window = QuotaWindow(100, clock=clock)

    waiting = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    window.ask(100)
    await asyncio.wait_for(waiting, BOUND)

    assert set(clock.slept) == {1.0}


def test_with_no_call_allowed_a_short_window_is_looked_at_again_sooner() -> None:
    window = QuotaWindow(100, clock=ManualClock(now=1000.0), window=3.0)
    window.ask(0)

    assert window.take() == pytest.approx(3.25 / 20)


def test_spent_counts_the_calls_of_the_current_window() -> None:
    clock = ManualClock(now=1000.0)
    window = window_of(10, clock)
    for _ in range(3):
        assert window.take() == 0.0
        clock.advance(1.0)

    assert window.spent == 3
    clock.advance(window.window - 2.5)
    assert window.spent == 2  # the first left the window, the others not yet


def test_the_reserve_slices_add_up_to_the_reserve_exactly() -> None:
    shares = [Share(frozenset({i}), 6) for i in range(6)]

    assert [share.calls(20) for share in shares] == [0, 0, 1, 0, 0, 1]
    assert sum(Share(frozenset({i}), 7).calls(1500) for i in range(7)) == 150


def test_three_replicas_with_a_third_each_use_the_whole_quota() -> None:
    thirds = [Share(frozenset(pair), 6, Fraction(1, 3)) for pair in ({0, 1}, {2, 3}, {4, 5})]

    assert [share.calls(20) for share in thirds] == [6, 7, 7]  # the floor of 20 / 3 would be 6


def test_the_pool_is_the_quota_less_the_reserve_times_the_work() -> None:
    share = Share(frozenset({0}), 6, Fraction(1))

    assert share.calls(20) == 18  # 20 less its reserve of 2, whose slice 0 holds none
    assert share.calls(100) == 91  # 90 of the pool and slice 0 of the reserve of 10


def test_the_reserve_is_a_whole_number_of_calls() -> None:
    assert Share(frozenset({0, 1}), 2, Fraction(1)).calls(25) == 25  # 2 reserved, 23 pooled


def test_a_share_of_nothing_allows_no_call() -> None:
    assert Share().calls(100) == 0
