"""consumer.offsets: the commit point is the contiguous done prefix of each partition."""

from __future__ import annotations

import pytest

from consumer.engine.offsets import OffsetTracker, PartitionOffsets


def offsets(*added: int) -> PartitionOffsets:
    state = PartitionOffsets()
    for offset in added:
        state.add(offset)
    return state


def test_nothing_is_committable_before_anything_completes() -> None:
    assert offsets(0, 1, 2).committable is None


def test_out_of_order_completion_holds_the_commit_point_until_the_gap_fills() -> None:
    state = offsets(0, 1, 2, 3)

    state.complete(2)
    state.complete(1)
    assert state.committable is None

    state.complete(0)
    assert state.committable == 3

    state.complete(3)
    assert state.committable == 4


def test_commit_point_moves_to_the_record_after_the_done_prefix() -> None:
    state = offsets(10, 11, 12)

    state.complete(10)
    state.complete(12)

    assert state.committable == 11


def test_gaps_in_offsets_commit_past_the_last_after_both_complete() -> None:
    state = offsets(5, 7)  # 6 was compacted away

    state.complete(7)
    assert state.committable is None

    state.complete(5)
    assert state.committable == 8


def test_window_counts_unfinished_and_finished_behind_a_slow_one() -> None:
    state = offsets(0, 1, 2)

    state.complete(1)
    state.complete(2)
    assert state.window == 3

    state.complete(0)
    assert state.window == 0


@pytest.mark.parametrize("offset", [6, 7])
def test_adding_an_offset_not_after_the_last_raises_naming_both(offset: int) -> None:
    state = offsets(3, 5, 7)

    with pytest.raises(ValueError, match=f"^offset {offset} added out of order after 7$"):
        state.add(offset)


def test_finished_offsets_are_forgotten_once_the_commit_point_passes_them() -> None:
    state = offsets(*range(1000))

    for offset in reversed(range(1000)):
        state.complete(offset)

    assert state.committable == 1000
    # Memory stays bounded by the window: nothing to observe but the set itself.
    assert state._done == set()


def tracker_with(**committable: int) -> OffsetTracker[str]:
    """A tracker whose partitions (named by keyword) have completed ``range(n)``."""
    tracker: OffsetTracker[str] = OffsetTracker()
    for name, n in committable.items():
        state = tracker.assign(name)
        for offset in range(n):
            state.add(offset)
            state.complete(offset)
    return tracker


def test_to_commit_leaves_out_partitions_with_nothing_done() -> None:
    tracker = tracker_with(p0=3, p1=0)

    assert tracker.to_commit() == {"p0": 3}


def test_to_commit_leaves_out_partitions_already_committed_at_that_offset() -> None:
    tracker = tracker_with(p0=3, p1=2)
    tracker.mark_committed({"p1": 2})

    assert tracker.to_commit() == {"p0": 3}


def test_to_commit_returns_a_partition_again_once_it_moved_past_its_commit() -> None:
    tracker = tracker_with(p0=3)
    tracker.mark_committed({"p0": 3})
    tracker["p0"].add(3)
    tracker["p0"].complete(3)

    assert tracker.to_commit() == {"p0": 4}


def test_to_commit_returns_only_the_requested_partitions() -> None:
    tracker = tracker_with(p0=3, p1=2, p2=1)

    assert tracker.to_commit(["p1", "p2", "unknown"]) == {"p1": 2, "p2": 1}


def test_mark_committed_records_the_offset_and_ignores_unknown_partitions() -> None:
    tracker = tracker_with(p0=3)

    tracker.mark_committed({"p0": 3, "gone": 9})

    assert tracker["p0"].committed == 3
    assert "gone" not in tracker


def test_assign_keeps_the_existing_state_of_an_owned_partition() -> None:
    tracker = tracker_with(p0=3)

    assert tracker.assign("p0").committable == 3


def test_forget_drops_the_partition_and_its_pending_commit() -> None:
    tracker = tracker_with(p0=3, p1=2)

    tracker.forget("p0")

    assert "p0" not in tracker
    assert tracker.partitions() == ["p1"]
    assert tracker.to_commit() == {"p1": 2}


def test_forgetting_a_partition_not_owned_does_nothing() -> None:
    tracker = tracker_with(p0=3)

    tracker.forget("p1")

    assert tracker.partitions() == ["p0"]


def test_a_forgotten_then_reassigned_partition_starts_fresh() -> None:
    tracker = tracker_with(p0=3)
    old = tracker["p0"]

    tracker.forget("p0")
    fresh = tracker.assign("p0")

    assert fresh is not old
    assert (fresh.committable, fresh.committed, fresh.window) == (None, None, 0)
