"""consumer.hold.Hold: one place that says why nothing new is taken."""

from __future__ import annotations

import asyncio

from consumer.hold import Hold, Reason


def test_a_new_hold_holds_nothing() -> None:
    hold = Hold()

    assert not hold
    assert hold.why() is None
    assert Reason.GUARD not in hold


def test_why_names_every_reason_with_its_detail() -> None:
    hold = Hold()
    hold.set(Reason.CIRCUIT, "APIGW.0301 authentication failed")
    hold.set(Reason.SHUTDOWN)

    assert hold
    assert hold.why() == "VOD circuit open: APIGW.0301 authentication failed; shutting down"


def test_setting_a_reason_twice_keeps_the_first_detail_and_says_so() -> None:
    hold = Hold()

    assert hold.set(Reason.GUARD, "first") is True
    assert hold.set(Reason.GUARD, "second") is False
    assert hold.why() == "dead-letter guard tripped: first"


def test_clearing_one_reason_leaves_the_others() -> None:
    hold = Hold()
    hold.set(Reason.CIRCUIT, "x")
    hold.set(Reason.GUARD, "y")

    assert hold.clear(Reason.CIRCUIT) is True
    assert hold.clear(Reason.CIRCUIT) is False
    assert Reason.GUARD in hold
    assert hold.why() == "dead-letter guard tripped: y"


def test_listeners_hear_every_change_and_only_changes() -> None:
    hold, heard = Hold(), []
    hold.on_change(lambda: heard.append(hold.why()))

    hold.set(Reason.CIRCUIT, "x")
    hold.set(Reason.CIRCUIT, "again")  # no change
    hold.clear(Reason.CIRCUIT)
    hold.clear(Reason.CIRCUIT)  # no change

    assert heard == ["VOD circuit open: x", None]


async def test_until_clear_returns_at_once_for_a_reason_not_held() -> None:
    hold = Hold()
    hold.set(Reason.GUARD)

    await asyncio.wait_for(hold.until_clear(Reason.CIRCUIT), 1)


async def test_until_clear_waits_for_that_reason_only() -> None:
    hold = Hold()
    hold.set(Reason.CIRCUIT, "x")
    waiter = asyncio.create_task(hold.until_clear(Reason.CIRCUIT))

    hold.set(Reason.SHUTDOWN)
    await asyncio.sleep(0)
    assert not waiter.done()
    hold.clear(Reason.CIRCUIT)

    await asyncio.wait_for(waiter, 1)
    assert Reason.SHUTDOWN in hold


async def test_a_reason_set_again_after_clearing_holds_its_waiters_again() -> None:
    hold = Hold()
    hold.set(Reason.CIRCUIT)
    hold.clear(Reason.CIRCUIT)
    hold.set(Reason.CIRCUIT)
    waiter = asyncio.create_task(hold.until_clear(Reason.CIRCUIT))

    await asyncio.sleep(0)
    assert not waiter.done()
    hold.clear(Reason.CIRCUIT)
    await asyncio.wait_for(waiter, 1)
