"""Retries: quick in-process attempts, delayed-retry tiers, and the dead-letter topic.

Sleeps, jitter and the wall clock are injected: nothing here waits for real time.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
import structlog
from structlog.typing import EventDict

from consumer.config import MatchSpec, RetrySettings, RouteSpec, Settings, TierSpec
from consumer.dispatch.pipeline import Pipeline
from consumer.dispatch.routing import Router
from consumer.engine.work import Work
from consumer.errors import TransientError
from consumer.events import Event
from consumer.handlers import Clients, Context, Handler
from consumer.outcomes import DONE, DeadLettered, Failed, Outcome, Retried, Retry
from consumer.redelivery import policy as retrying
from consumer.redelivery.guard import DeadLetterGuard
from consumer.redelivery.headers import Trail
from consumer.redelivery.sidetopics import SideTopics
from consumer.redelivery.topology import Tier, Topology
from consumer.testing import ManualClock
from tests.fakes import FakeRecord, FakeSink, cover_event, make_work

MAIN = "vod-cover-events"
NOW = 1_800_000_000.0  # the side topics' wall clock, epoch seconds
NOW_MS = int(NOW * 1000)
FIRST_SEEN_MS = 1_700_000_000_000

# -- handlers ----------------------------------------------------------------------------

Behaviour = Outcome | Exception


class Scripted:
    """A handler doing the next scripted thing on each call (the last one repeats).

    ``attempts`` keeps the ``ctx.attempt`` of every call.
    """

    def __init__(self, *script: Behaviour) -> None:
        self.script = script
        self.attempts: list[int] = []

    async def __call__(self, event: Event, ctx: Context) -> Outcome:
        self.attempts.append(ctx.attempt)
        behaviour = self.script[min(len(self.attempts), len(self.script)) - 1]
        if isinstance(behaviour, Exception):
            raise behaviour
        return behaviour


class Flaky(Exception):
    """A client error marked retryable without depending on this package."""

    retryable = True


# -- the rig -----------------------------------------------------------------------------


def side(sink: FakeSink, tiers: Sequence[float] = (60, 600)) -> SideTopics:
    settings = Settings(retry={"tiers": [{"delay": d} for d in tiers]})
    guard = DeadLetterGuard(200, 0.5, 50, on_trip=lambda why: None)
    return SideTopics(
        sink,
        Topology.from_settings(settings),
        guard,
        "test-group",
        clock=ManualClock(wall_start=NOW),
    )


def pipeline(
    clients: Clients,
    *handlers: Handler,
    sink: FakeSink,
    clock: ManualClock | None = None,
    rng: float = 0.5,
) -> Pipeline:
    """Cover events go to ``handlers`` (named h0, h1, ...), with tiers of 60 s and 600 s."""
    named = {f"h{i}": handler for i, handler in enumerate(handlers)}
    routes = [RouteSpec(match=MatchSpec(event_type="coverComplete"), handlers=list(named))]
    router = Router.from_specs(routes, resolve_handler=named.__getitem__)
    return Pipeline(
        router,
        clients,
        structlog.get_logger(),
        side(sink),
        RetrySettings(),
        clock=clock or ManualClock(),
        rng=lambda: rng,
    )


def work(
    headers: Sequence[tuple[str, bytes | None]] = (), topic: str = MAIN, partition: int = 3
) -> Work:
    offset = 42 if topic == MAIN else 7
    record = FakeRecord(
        topic,
        partition,
        offset,
        b"a1",
        cover_event("a1"),
        timestamp=FIRST_SEEN_MS,
        headers=tuple(headers),
    )
    return make_work(record)


def from_tier(tier: int, step: int, attempt: int, more: Sequence[tuple[str, bytes]] = ()) -> Work:
    """The record as read back from tier ``tier`` after an earlier retry of main offset 42."""
    headers = [
        ("cc-origin-topic", MAIN.encode()),
        ("cc-origin-partition", b"3"),
        ("cc-origin-offset", b"42"),
        ("cc-first-seen-ms", str(FIRST_SEEN_MS).encode()),
        ("cc-attempt", str(attempt).encode()),
        ("cc-step", str(step).encode()),
        ("cc-tier", str(tier).encode()),
        ("cc-due-ms", str(NOW_MS).encode()),
        ("cc-reason", b"earlier"),
        *more,
    ]
    topic = f"{MAIN}.retry.1m" if tier == 0 else f"{MAIN}.retry.10m"
    return work(headers, topic=topic, partition=0)


def outcome_line(logs: list[EventDict]) -> EventDict:
    lines = [entry for entry in logs if entry["event"] == "record_processed"]
    assert len(lines) == 1, lines
    return lines[0]


ORIGIN = {
    "cc-origin-topic": MAIN,
    "cc-origin-partition": "3",
    "cc-origin-offset": "42",
    "cc-first-seen-ms": str(FIRST_SEEN_MS),
}

# -- quick retries -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [TimeoutError("slow"), TransientError("503"), Flaky("reset")],
    ids=["TimeoutError", "TransientError", "retryable"],
)
async def test_a_transient_failure_then_success_is_done_on_the_second_quick_attempt(
    clients: Clients, logs: list[EventDict], failure: Exception
) -> None:
    sink, sleeps = FakeSink(), ManualClock()
    handler = Scripted(failure, DONE)

    outcome = await pipeline(clients, handler, sink=sink, clock=sleeps).process(work())

    assert outcome == DONE
    assert handler.attempts == [1, 2]
    line = outcome_line(logs)
    assert (line["outcome"], line["attempt"]) == ("done", 2)
    assert len(sleeps.slept) == 1
    assert sink.sent == []


async def test_quick_retry_sleeps_use_full_jitter_over_an_exponential_ceiling(
    clients: Clients, logs: list[EventDict]
) -> None:
    sleeps = ManualClock()
    handler = Scripted(Retry("busy"), Retry("busy"), DONE)

    await pipeline(clients, handler, sink=FakeSink(), clock=sleeps, rng=0.5).process(work())

    # base 0.2: ceilings 0.2 then 0.4, times rng 0.5
    assert sleeps.slept == pytest.approx([0.1, 0.2])


# -- delayed-retry tiers -----------------------------------------------------------------


async def test_retry_after_beyond_the_quick_budget_goes_straight_to_the_first_tier_covering_it(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink, sleeps = FakeSink(), ManualClock()
    handler = Scripted(Retry("rate limited", after=120))

    outcome = await pipeline(clients, handler, sink=sink, clock=sleeps).process(work())

    assert handler.attempts == [1]
    assert sleeps.slept == []
    assert outcome == Retried("rate limited", f"{MAIN}.retry.10m", NOW + 600)
    [(topic, key, value, headers)] = sink.sent
    assert (topic, key, value) == (f"{MAIN}.retry.10m", b"a1", cover_event("a1"))
    assert headers == {
        **ORIGIN,
        "cc-attempt": "1",
        "cc-step": "0",
        "cc-tier": "1",
        "cc-due-ms": str(NOW_MS + 600_000),
        "cc-reason": "rate limited",
    }
    line = outcome_line(logs)
    assert (line["outcome"], line["retry_topic"], line["due"]) == (
        "retried",
        f"{MAIN}.retry.10m",
        NOW + 600,
    )
    assert line["attempt"] == 1


async def test_transient_failures_exhausting_quick_attempts_go_to_the_first_tier(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    handler = Scripted(TimeoutError("slow"))

    outcome = await pipeline(clients, handler, sink=sink).process(work())

    assert handler.attempts == [1, 2, 3]
    assert isinstance(outcome, Retried)
    [(topic, _, _, headers)] = sink.sent
    assert topic == f"{MAIN}.retry.1m"
    assert (headers["cc-attempt"], headers["cc-tier"], headers["cc-step"]) == ("3", "0", "0")
    assert headers["cc-due-ms"] == str(NOW_MS + 60_000)
    assert outcome_line(logs)["outcome"] == "retried"


async def test_a_record_back_from_a_tier_resumes_at_its_step_with_the_attempt_count_carried_on(
    clients: Clients, logs: list[EventDict]
) -> None:
    first, second = Scripted(DONE), Scripted(DONE)

    outcome = await pipeline(clients, first, second, sink=FakeSink()).process(
        from_tier(tier=0, step=1, attempt=3)
    )

    assert outcome == DONE
    assert first.attempts == []
    assert second.attempts == [4]
    line = outcome_line(logs)
    assert (line["handler"], line["attempt"]) == ("h1", 4)


async def test_a_resumed_record_retrying_again_goes_to_a_later_tier_keeping_its_origin(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    first, second = Scripted(DONE), Scripted(Retry("still busy"))

    outcome = await pipeline(clients, first, second, sink=sink).process(
        from_tier(tier=0, step=1, attempt=3)
    )

    assert isinstance(outcome, Retried)
    assert second.attempts == [4, 5, 6]
    [(topic, key, value, headers)] = sink.sent
    assert (topic, key, value) == (f"{MAIN}.retry.10m", b"a1", cover_event("a1"))
    assert headers == {
        **ORIGIN,  # the main topic's coordinates, not the 1m tier's
        "cc-attempt": "6",
        "cc-step": "1",
        "cc-tier": "1",
        "cc-due-ms": str(NOW_MS + 600_000),
        "cc-reason": "still busy",
    }


async def test_past_the_last_tier_the_next_handler_of_the_route_takes_over(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    retrier, fallback = Scripted(Retry("still busy")), Scripted(DONE)

    outcome = await pipeline(clients, retrier, fallback, sink=sink).process(
        from_tier(tier=1, step=0, attempt=6)
    )

    assert outcome == DONE
    assert retrier.attempts == [7, 8, 9]
    assert fallback.attempts == [1]
    assert sink.sent == []
    assert outcome_line(logs)["handler"] == "h1"


async def test_past_the_last_tier_with_no_next_handler_the_record_is_dead_lettered(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    retrier = Scripted(Retry("still busy"))

    outcome = await pipeline(clients, retrier, sink=sink).process(
        from_tier(tier=1, step=0, attempt=6)
    )

    assert isinstance(outcome, DeadLettered)
    assert outcome.reason.startswith("retries exhausted")
    [(topic, key, value, headers)] = sink.sent
    assert (topic, key, value) == (f"{MAIN}.dlq", b"a1", cover_event("a1"))
    assert headers == {
        **ORIGIN,
        "cc-reason": "retries exhausted: still busy",
        "cc-error": "",
        "cc-handler": "h0",
        "cc-attempt": "9",
        "cc-last-tried-ms": str(NOW_MS),
        "cc-group": "test-group",
        "cc-host": socket.gethostname(),
    }
    line = outcome_line(logs)
    assert (line["outcome"], line["log_level"]) == ("dead_lettered", "error")


# -- dead letters ------------------------------------------------------------------------


async def test_an_unexpected_exception_is_dead_lettered_after_unexpected_attempts_never_tiered(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    handler = Scripted(RuntimeError("VOD said 500"))

    outcome = await pipeline(clients, handler, sink=sink).process(work())

    assert handler.attempts == [1, 2, 3]
    assert isinstance(outcome, DeadLettered)
    assert outcome.error == "RuntimeError"
    assert "VOD said 500" in outcome.reason
    assert [topic for topic, _, _, _ in sink.sent] == [f"{MAIN}.dlq"]
    headers = sink.sent[0][3]
    assert (headers["cc-error"], headers["cc-attempt"]) == ("RuntimeError", "3")
    assert outcome_line(logs)["error"] == "RuntimeError"


async def test_a_handler_failing_is_dead_lettered_after_one_call(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    handler = Scripted(Failed("asset deleted"))

    outcome = await pipeline(clients, handler, sink=sink).process(work())

    assert handler.attempts == [1]
    assert outcome == DeadLettered("asset deleted")
    assert [topic for topic, _, _, _ in sink.sent] == [f"{MAIN}.dlq"]


# -- the handlers' memo rides the tiers -------------------------------------------------


async def test_what_a_handler_keeps_in_its_memo_travels_to_the_tier_and_back(
    clients: Clients,
) -> None:
    seen: list[dict[str, Any]] = []

    async def remembers(event: Event, ctx: Context) -> Outcome:
        seen.append(dict(ctx.memo))
        ctx.memo["task"] = ctx.memo.get("task", "t-1")
        ctx.memo["calls"] = ctx.memo.get("calls", 0) + 1
        return Retry("not yet", after=30)

    sink = FakeSink()
    await pipeline(clients, remembers, sink=sink).process(work())
    [(_, _, _, headers)] = sink.sent
    memo = headers["cc-memo"] or ""
    back = from_tier(0, 0, 3, [("cc-memo", memo.encode())])
    await pipeline(clients, remembers, sink=FakeSink()).process(back)

    assert headers["cc-memo"] == '{"calls":1,"task":"t-1"}'
    assert seen == [{}, {"calls": 1, "task": "t-1"}]


async def test_a_memo_on_a_record_not_read_from_a_tier_is_no_memo(clients: Clients) -> None:
    # On the main topic the header is anyone's: a forged fallback memo would have the
    # handler set the cover URL it names.
    seen: list[dict[str, Any]] = []

    async def looks(event: Event, ctx: Context) -> Outcome:
        seen.append(dict(ctx.memo))
        return DONE

    forged = from_tier(0, 0, 3, [("cc-memo", b'{"fallback": {"url": "https://evil/x.jpg"}}')])
    on_main = work(forged.record.headers)
    outcome = await pipeline(clients, looks, sink=FakeSink()).process(on_main)

    assert outcome == DONE
    assert seen == [{}]


@pytest.mark.parametrize("memo", [b"[not a mapping", b"[" * 100_000], ids=["list", "deep"])
async def test_an_unreadable_memo_is_no_memo(clients: Clients, memo: bytes) -> None:
    seen: list[dict[str, Any]] = []

    async def looks(event: Event, ctx: Context) -> Outcome:
        seen.append(dict(ctx.memo))
        return DONE

    back = from_tier(0, 0, 3, [("cc-memo", memo)])
    outcome = await pipeline(clients, looks, sink=FakeSink()).process(back)

    assert outcome == DONE
    assert seen == [{}]


# -- retrying: pure functions ------------------------------------------------------------

TIERS = (Tier(0, 60, "r.1m"), Tier(1, 600, "r.10m"), Tier(2, 3600, "r.1h"))


@pytest.mark.parametrize(
    ("current", "after", "expected"),
    [(-1, None, 0), (0, None, 1), (1, None, 2), (-1, 30, 0), (0, 30, 1), (1, 5, 2)],
)
def test_next_tier_is_always_later_than_the_current_one(
    current: int, after: float | None, expected: int
) -> None:
    tier = retrying.next_tier(TIERS, current, after)

    assert tier is not None
    assert tier.index == expected


@pytest.mark.parametrize(("after", "expected"), [(60, 0), (61, 1), (600, 1), (3000, 2)])
def test_next_tier_is_the_first_whose_delay_covers_after(after: float, expected: int) -> None:
    tier = retrying.next_tier(TIERS, -1, after)

    assert tier is not None
    assert tier.index == expected


@pytest.mark.parametrize("after", [None, 10.0, 10_000.0])
def test_next_tier_is_none_past_the_last_tier(after: float | None) -> None:
    assert retrying.next_tier(TIERS, 2, after) is None


@pytest.mark.parametrize(("current", "expected"), [(-1, 2), (0, 2), (1, 2)])
def test_next_tier_for_after_beyond_every_tier_is_the_last_remaining(
    current: int, expected: int
) -> None:
    tier = retrying.next_tier(TIERS, current, 99_999)

    assert tier is not None
    assert tier.index == expected


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        ConnectionError(),
        ConnectionResetError(),
        aiohttp.ClientConnectionError(),
        TransientError("x"),
        Flaky(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_is_transient_for_timeouts_connection_errors_and_retryable_errors(
    exc: BaseException,
) -> None:
    assert retrying.is_transient(exc) is True


@pytest.mark.parametrize(
    "exc", [RuntimeError(), ValueError(), KeyError()], ids=lambda exc: type(exc).__name__
)
def test_is_transient_is_false_for_other_errors(exc: BaseException) -> None:
    assert retrying.is_transient(exc) is False


@pytest.mark.parametrize(
    ("attempt", "rng", "expected"),
    [(1, 0.0, 0.0), (1, 0.999, 0.1998), (3, 0.5, 0.4), (10, 0.5, 2.5), (10, 0.999, 4.995)],
)
def test_backoff_is_rng_times_min_of_cap_and_exponential_ceiling(
    attempt: int, rng: float, expected: float
) -> None:
    delay = retrying.backoff(attempt, 0.2, 5.0, lambda: rng)

    assert delay == pytest.approx(expected)


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_never_exceeds_the_cap(attempt: int) -> None:
    assert 0 <= retrying.backoff(attempt, 0.2, 5.0, lambda: 0.999_999) < 5.0


def test_retry_settings_default_to_base_02_and_cap_5() -> None:
    settings = RetrySettings()

    assert (settings.quick_base_delay, settings.quick_max_delay) == (0.2, 5.0)


# -- topology ----------------------------------------------------------------------------


def test_topology_names_tiers_and_dead_letters_after_the_main_topic_by_default() -> None:
    topology = Topology.from_settings(Settings())

    assert [tier.topic for tier in topology.tiers] == [
        f"{MAIN}.retry.1m",
        f"{MAIN}.retry.10m",
        f"{MAIN}.retry.1h",
    ]
    assert [(tier.index, tier.delay) for tier in topology.tiers] == [(0, 60), (1, 600), (2, 3600)]
    assert (topology.dead_letter, topology.replays) == (f"{MAIN}.dlq", f"{MAIN}.dlq.replays")


def test_a_tier_with_an_explicit_topic_keeps_it() -> None:
    settings = Settings(
        retry=RetrySettings(tiers=[TierSpec(delay=60, topic="custom.later"), TierSpec(delay=600)])
    )

    topics = [tier.topic for tier in Topology.from_settings(settings).tiers]

    assert topics == ["custom.later", f"{MAIN}.retry.10m"]


@pytest.mark.parametrize(
    ("delay", "label"), [(90, "90s"), (7200, "2h"), (120, "2m"), (30, "30s"), (5400, "90m")]
)
def test_a_tier_topic_is_labelled_with_its_delay_in_the_largest_whole_unit(
    delay: float, label: str
) -> None:
    settings = Settings(retry=RetrySettings(tiers=[TierSpec(delay=delay)]))

    [tier] = Topology.from_settings(settings).tiers

    assert tier.topic == f"{MAIN}.retry.{label}"


# -- headers.Trail -----------------------------------------------------------------------


def test_a_trail_of_a_record_without_history_starts_afresh_at_its_own_coordinates() -> None:
    trail = Trail.of(MAIN, 3, 42, FIRST_SEEN_MS, [("traceparent", b"00-abc")])

    assert trail == Trail(MAIN, 3, 42, FIRST_SEEN_MS, step=0, attempt=0, tier=-1)


def test_a_trail_of_a_retried_record_reads_its_history_from_headers() -> None:
    record = from_tier(tier=1, step=2, attempt=5).record

    trail = Trail.of(record.topic, record.partition, record.offset, 123, record.headers)

    assert trail == Trail(MAIN, 3, 42, FIRST_SEEN_MS, step=2, attempt=5, tier=1)


def test_a_trail_falls_back_to_defaults_for_malformed_header_numbers() -> None:
    headers = [
        ("cc-origin-topic", MAIN.encode()),
        ("cc-origin-partition", b"three"),
        ("cc-origin-offset", b""),
        ("cc-first-seen-ms", b"yesterday"),
        ("cc-step", b"1.5"),
        ("cc-attempt", b"\xff"),
        ("cc-tier", b"-"),
    ]

    trail = Trail.of(f"{MAIN}.retry.1m", 0, 7, 999, headers)

    assert trail == Trail(MAIN, 0, 7, 999, step=0, attempt=0, tier=-1)


def test_a_trail_writes_back_the_origin_headers_it_read() -> None:
    record = from_tier(tier=0, step=1, attempt=3).record
    trail = Trail.of(record.topic, record.partition, record.offset, 0, record.headers)

    assert {k: v.decode() for k, v in trail.origin_headers()} == ORIGIN
