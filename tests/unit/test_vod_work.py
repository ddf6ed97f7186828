"""What a replica asks of the VOD quotas from its view of the group's work: its claims,
the partitions of others its readings of Kafka showed active, and when it may grow at once."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from fractions import Fraction

import pytest

from consumer.testing import ManualClock
from consumer.vod.quota import Ask, Partition, WorkView

M, TIER = "main", "main.retry.1m"
PERIOD = 0.125  # a quota window of 3 s; exact in binary, so are all the times below
Offsets = Mapping[Partition, tuple[int, int | None]]


def main(*partitions: int) -> set[Partition]:
    return {(M, p) for p in partitions}


def quiet(committed: int = 5, partitions: int = 6) -> dict[Partition, tuple[int, int | None]]:
    """Every partition of the main topic with all its records committed."""
    return {(M, p): (committed, committed) for p in range(partitions)}


def with_backlog(*partitions: int) -> dict[Partition, tuple[int, int | None]]:
    return {**quiet(), **{(M, p): (9, 5) for p in partitions}}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1000.0)


@pytest.fixture
def view(clock: ManualClock) -> WorkView:
    return WorkView(M, 3.0, PERIOD, clock=clock)


def follow(
    view: WorkView,
    clock: ManualClock,
    periods: int,
    owned: Collection[Partition],
    busy: Collection[Partition] = (),
    offsets: Offsets | None = None,
) -> Ask:
    """A reading (none if ``offsets`` is None) and an ask, then a period, ``periods`` times:
    the last ask, made a period ago."""
    asks = []
    for _ in range(periods):
        if offsets is not None:
            view.read(clock.now, offsets)
        asks.append(view.ask(owned, busy, 6))
        clock.advance(PERIOD)
    return asks[-1]


def settled(view: WorkView, clock: ManualClock, owned: Collection[Partition]) -> None:
    """A window and more of readings with nothing active."""
    follow(view, clock, 30, owned, offsets=quiet())  # 3.75 s


def test_the_timings_follow_the_period_and_the_window(view: WorkView) -> None:
    assert (view.fresh, view.claim_after, view.stick) == (0.75, 1.0, 1.0)
    assert view.window == pytest.approx(3.25)
    assert WorkView(M, 60.0, 1.0).fresh == 3.0  # three periods
    assert WorkView(M, 0.5, 0.025).fresh == 0.125  # a quarter of a short window


def test_with_nothing_busy_the_pool_is_split_by_partitions(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))

    ask = follow(view, clock, 1, main(0, 1), offsets=quiet())

    assert (ask.share.partitions, ask.share.total, ask.share.work) == (
        frozenset({0, 1}),
        6,
        Fraction(1, 3),
    )


def test_a_busy_partition_is_claimed_once_it_stayed_busy_long_enough(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 7, main(0, 1), main(0), with_backlog(0))
    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0))
    assert ask.share.work == Fraction(1, 3)  # busy for 0.875 s: by partitions still

    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0))

    assert ask.share.work == 1  # 1 s: the only busy partition of the group, the whole pool


def test_a_partition_of_another_seen_active_takes_its_part_of_the_pool(
    view: WorkView, clock: ManualClock
) -> None:
    ask = follow(view, clock, 10, main(0, 1), main(0), with_backlog(0, 3))

    assert ask.share.work == Fraction(1, 2)


def test_another_partition_seen_active_leaves_nothing_to_a_replica_with_no_claim(
    view: WorkView, clock: ManualClock
) -> None:
    ask = follow(view, clock, 1, main(0, 1), offsets=with_backlog(3))

    assert ask.share.work == 0


def test_a_partition_seen_active_once_counts_for_stick_seconds(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 1, main(0, 1), offsets=with_backlog(3))

    assert follow(view, clock, 8, main(0, 1), offsets=quiet()).share.work == 0
    assert follow(view, clock, 1, main(0, 1), offsets=quiet()).share.work == Fraction(1, 3)


def test_a_committed_offset_that_moved_is_activity_without_a_backlog(
    view: WorkView, clock: ManualClock
) -> None:
    follow(view, clock, 1, main(0, 1), offsets=quiet(5))

    ask = follow(view, clock, 1, main(0, 1), offsets={**quiet(5), (M, 3): (7, 7)})

    assert ask.share.work == 0


def test_a_partition_seen_for_the_first_time_is_active(view: WorkView, clock: ManualClock) -> None:
    follow(view, clock, 1, main(0, 1), offsets=quiet(partitions=5))

    ask = follow(view, clock, 1, main(0, 1), offsets=quiet(partitions=6))

    assert ask.share.work == 0  # partition 5 may have been busy before: its past is unknown


def test_records_with_no_commit_at_all_are_a_backlog(view: WorkView, clock: ManualClock) -> None:
    empty = {**quiet(0), (M, 4): (0, None)}
    follow(view, clock, 1, main(0, 1), offsets=empty)
    assert follow(view, clock, 10, main(0, 1), offsets=empty).share.work == Fraction(1, 3)

    ask = follow(view, clock, 1, main(0, 1), offsets={**empty, (M, 4): (1, None)})

    assert ask.share.work == 0


def test_a_gap_in_the_samples_starts_a_streak_again(view: WorkView, clock: ManualClock) -> None:
    follow(view, clock, 7, main(0, 1), main(0), with_backlog(0))
    clock.advance(1.0)  # no sample for longer than a view is trusted

    ask = follow(view, clock, 4, main(0, 1), main(0), with_backlog(0))

    assert ask.share.work == Fraction(1, 3)  # not claimed yet: 1.1 s since the gap, not 2


def test_a_partition_not_busy_at_a_sample_starts_its_streak_again(
    view: WorkView, clock: ManualClock
) -> None:
    follow(view, clock, 7, main(0, 1), main(0), with_backlog(0))
    follow(view, clock, 1, main(0, 1), (), with_backlog(0))

    ask = follow(view, clock, 4, main(0, 1), main(0), with_backlog(0))

    assert ask.share.work == Fraction(1, 3)


def test_without_a_fresh_reading_every_partition_of_another_counts_as_busy(
    view: WorkView, clock: ManualClock
) -> None:
    follow(view, clock, 1, main(0, 1), main(0), with_backlog(0))

    ask = follow(view, clock, 10, main(0, 1), main(0))

    assert ask.share.work == Fraction(1, 5)  # its claim against the 4 partitions of others
    assert ask.until == pytest.approx(clock.now - PERIOD + view.fresh)
    assert ask.then.work == 0
    assert not ask.at_once


def test_a_view_is_used_while_its_ask_outlives_the_next_period(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 1, main(0, 1), offsets=quiet())
    clock.advance(view.fresh - 2 * PERIOD - 0.01)
    assert view.ask(main(0, 1), (), 6).share.work == Fraction(1, 3)

    clock.advance(0.02)

    assert view.ask(main(0, 1), (), 6).share.work == 0  # pessimistic: 4 partitions of others


def test_an_ask_from_a_fresh_view_ends_a_view_later_with_no_claims(
    view: WorkView, clock: ManualClock
) -> None:
    began = clock.now
    view.read(began, quiet())
    clock.advance(0.05)

    ask = view.ask(main(0, 1), (), 6)

    assert ask.until == pytest.approx(began + view.fresh)
    assert (ask.then.partitions, ask.then.work) == (frozenset({0, 1}), Fraction(0))


def test_a_replica_owning_every_partition_needs_no_view(view: WorkView, clock: ManualClock) -> None:
    ask = view.ask(main(*range(6)), (), 6)

    assert (ask.share.work, ask.then.work) == (Fraction(1), Fraction(1))


def test_only_main_partitions_below_the_total_are_claimed_or_counted(
    view: WorkView, clock: ManualClock
) -> None:
    tiers = {(TIER, 0): (9, 5), (TIER, 1): (9, 5)}
    owned = {*main(0, 1, 6), (TIER, 0)}
    ask = follow(view, clock, 10, owned, {(M, 6), (TIER, 0), (M, 3)}, {**quiet(), **tiers})

    assert (ask.share.partitions, ask.share.work) == (frozenset({0, 1}), Fraction(1, 3))


def test_a_growth_applies_at_once_when_no_other_partition_was_active_for_a_window(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))

    ask = follow(view, clock, 10, main(0, 1), main(0), with_backlog(0))

    assert (ask.share.work, ask.at_once) == (Fraction(1), True)


def test_no_growth_at_once_after_another_partition_was_active_within_the_window(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 1, main(0, 1), offsets=with_backlog(3))

    ask = follow(view, clock, 22, main(0, 1), main(0), with_backlog(0))

    assert (ask.share.work, ask.at_once) == (Fraction(1), False)
    assert follow(view, clock, 5, main(0, 1), main(0), with_backlog(0)).at_once


def test_no_growth_at_once_after_a_tier_partition_was_active_within_the_window(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))

    ask = follow(view, clock, 10, main(0, 1), main(0), {**with_backlog(0), (TIER, 0): (3, 2)})

    assert (ask.share.work, ask.at_once) == (Fraction(1), False)


def test_no_growth_at_once_before_the_readings_reach_back_a_window(
    view: WorkView, clock: ManualClock
) -> None:
    follow(view, clock, 7, main(0, 1), offsets=quiet())

    ask = follow(view, clock, 10, main(0, 1), main(0), with_backlog(0))

    assert not ask.at_once


def test_no_growth_at_once_for_a_partition_owned_for_less_than_a_window(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(1))

    ask = follow(view, clock, 10, main(0, 1), main(0), with_backlog(0))

    assert not ask.at_once  # its previous owner may have called VOD in the window


def test_no_growth_at_once_from_an_ask_made_a_period_after_the_last_reading(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 10, main(0, 1), main(0), with_backlog(0))

    ask = view.ask(main(0, 1), main(0), 6)  # e.g. a rebalance, a period after the reading

    assert (ask.share.work, ask.at_once) == (Fraction(1), False)


def test_partitions_turning_busy_while_asking_by_partitions_keep_that_ask(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))

    ask = follow(view, clock, 1, main(0, 1), main(0, 1), with_backlog(*range(6)))

    assert ask.share.work == Fraction(1, 3)  # not nothing until its own claims count


def test_keeping_never_grows_an_ask(view: WorkView, clock: ManualClock) -> None:
    settled(view, clock, main(0, 1))

    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 3))

    assert ask.share.work == Fraction(1, 3)  # as a claim, half the pool: more than it had


def test_keeping_is_never_more_than_the_busy_partitions_would_claim(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 2, 3))

    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 2, 3, 4, 5))

    assert ask.share.work == Fraction(1, 5)
    assert follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 3)).share.work == (
        Fraction(1, 5)  # and never grows back
    )


def test_keeping_ends_with_the_busy_partitions(view: WorkView, clock: ManualClock) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 2, 3, 4, 5))

    ask = follow(view, clock, 1, main(0, 1), (), with_backlog(2, 3, 4, 5))

    assert ask.share.work == 0


def test_nothing_is_kept_by_a_replica_that_was_not_asking_by_partitions(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 1, main(0, 1), offsets=with_backlog(3))

    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 3))

    assert ask.share.work == 0


def test_nothing_is_kept_across_a_view_gone_stale(view: WorkView, clock: ManualClock) -> None:
    settled(view, clock, main(0, 1))
    clock.advance(view.fresh)
    view.ask(main(0, 1), (), 6)

    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 3))

    assert ask.share.work == 0


def test_a_replica_that_knows_no_partition_of_the_main_topic_asks_nothing(
    view: WorkView,
) -> None:
    ask = view.ask(set(), set(), 0)

    assert (ask.share.calls(100), ask.then.calls(100)) == (0, 0)


def test_the_reading_period_bounds_how_stale_a_view_may_be(clock: ManualClock) -> None:
    assert WorkView(M, 6.0, 0.05).fresh == 1.0  # at most a second, when 3 periods are less


def test_a_view_is_fresh_up_to_its_last_moment(view: WorkView, clock: ManualClock) -> None:
    settled(view, clock, main(0, 1))
    began = clock.now - PERIOD
    clock.now = began + view.fresh - PERIOD  # its ask still outlives the next period

    assert view.ask(main(0, 1), (), 6).share.work == Fraction(1, 3)


def test_a_gap_of_exactly_a_fresh_view_keeps_a_streak(view: WorkView, clock: ManualClock) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 2, main(0, 1), main(0), with_backlog(0))
    clock.now += view.fresh - PERIOD  # the last sample was a period before now
    follow(view, clock, 6, main(0, 1), main(0), with_backlog(0))

    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0))

    assert ask.share.work == 1  # busy since 8 periods and the gap: a claim


def test_every_own_partition_active_still_lets_it_grow_at_once(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))

    ask = follow(view, clock, 9, main(0, 1), main(0, 1), with_backlog(0, 1))

    assert (ask.share.work, ask.at_once) == (Fraction(1), True)


def test_a_partition_owned_for_exactly_a_window_was_owned_throughout(
    view: WorkView, clock: ManualClock
) -> None:
    start = clock.now
    for k in range(-30, 27):  # readings from before it owned anything, asks from start on
        clock.now = start + k * PERIOD
        view.read(clock.now, with_backlog(0))
        if k >= 0:
            ask = view.ask(main(0, 1), main(0), 6)
            assert ask.at_once == (k == 26), k  # owned since start: a window at k = 26


def test_activity_of_others_bars_growing_at_once_for_a_window_and_a_period(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    seen = clock.now
    follow(view, clock, 1, main(0, 1), offsets=with_backlog(3))
    follow(view, clock, 25, main(0, 1), main(0), with_backlog(0))

    clock.now = seen + view.window  # 26 periods later
    view.read(clock.now, with_backlog(0))
    assert not view.ask(main(0, 1), main(0), 6).at_once
    clock.now = seen + view.window + PERIOD
    view.read(clock.now, with_backlog(0))
    assert view.ask(main(0, 1), main(0), 6).at_once


def test_readings_reaching_back_exactly_a_window_and_a_period_are_enough(
    view: WorkView, clock: ManualClock
) -> None:
    first = clock.now
    for k in range(28):  # the first reading sees everything for the first time: active
        clock.now = first + k * PERIOD
        view.read(clock.now, quiet())
        ask = view.ask(main(0, 1), (), 6)

    assert clock.now == first + view.window + PERIOD
    assert ask.at_once


def test_keeping_ends_once_every_busy_partition_is_a_claim(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 8, main(0, 1), main(0), with_backlog(0, 2, 3))

    ask = follow(view, clock, 1, main(0, 1), main(0), with_backlog(0, 2, 3, 4, 5))

    assert ask.share.work == Fraction(1, 5)  # its claim among 5, not the third it kept


def test_claims_as_many_as_the_others_are_no_split_by_partitions(
    view: WorkView, clock: ManualClock
) -> None:
    settled(view, clock, main(0, 1))
    follow(view, clock, 9, main(0, 1), main(0), with_backlog(0, 3))  # 1 claim, 1 other

    ask = follow(view, clock, 1, main(0, 1), main(0, 1), with_backlog(0, 1, 3, 4, 5))

    assert ask.share.work == Fraction(1, 4)  # nothing kept: its claim among 4
