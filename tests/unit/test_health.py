"""The side server's verdicts: /livez from the loop's heartbeat, /readyz from the hold."""

from __future__ import annotations

from consumer.hold import Hold, Reason
from consumer.service.health import BrokerContact, Health
from consumer.testing import ManualClock


def test_live_while_the_loop_beats_and_not_once_it_stalls() -> None:
    clock, beat = ManualClock(now=100.0), [100.0]
    health = Health(lambda: beat[0], liveness_timeout=60, clock=clock)
    health.joined = True

    clock.now = 150
    assert health.live() == (True, "ok")
    clock.now = 161
    assert health.live() == (False, "consume loop stalled for 61s")
    beat[0] = 160
    assert health.live() == (True, "ok")


def test_live_while_still_joining_whatever_the_heartbeat() -> None:
    health = Health(lambda: 0.0, liveness_timeout=60, clock=ManualClock(now=100.0))

    assert health.live() == (True, "starting")


def test_ready_only_once_joined_and_while_nothing_holds_it() -> None:
    hold = Hold()
    health = Health(lambda: 0.0, liveness_timeout=60, hold=hold)

    assert health.ready() == (False, "not yet in the consumer group")
    health.joined = True
    assert health.ready() == (True, "ok")
    hold.set(Reason.GUARD, "30 of the last 50 records would be dead letters")
    assert health.ready() == (
        False,
        "dead-letter guard tripped: 30 of the last 50 records would be dead letters",
    )
    hold.clear(Reason.GUARD)
    hold.set(Reason.SHUTDOWN)
    assert health.ready() == (False, "shutting down")


def test_not_ready_once_the_broker_has_not_answered_for_the_grace_and_ready_again_after() -> None:
    clock = ManualClock(now=100.0)
    contact = BrokerContact(clock, grace=6)
    health = Health(lambda: 0.0, liveness_timeout=60, clock=clock, contact=contact)
    health.joined = True

    contact.unanswered("KafkaConnectionError")
    clock.advance(5.9)
    assert health.ready() == (True, "ok")  # one missed probe is no outage
    clock.advance(0.2)
    assert health.ready() == (False, "broker unreachable for 6s (KafkaConnectionError)")
    contact.unanswered("TimeoutError")  # the outage goes on: counted from its start
    clock.advance(4)
    assert health.ready() == (False, "broker unreachable for 10s (TimeoutError)")
    contact.answered()
    assert health.ready() == (True, "ok")


def test_not_ready_while_offset_commits_keep_failing() -> None:
    clock = ManualClock(now=100.0)
    failing: list[float | None] = [None]
    health = Health(
        lambda: 0.0, liveness_timeout=60, clock=clock, commits_failing_since=lambda: failing[0]
    )
    health.joined = True

    failing[0] = 97.0
    assert health.ready() == (True, "ok")
    clock.advance(3)
    assert health.ready() == (False, "offset commits failing for 6s")
    failing[0] = None
    assert health.ready() == (True, "ok")
