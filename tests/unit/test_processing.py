"""consumer.dispatch.pipeline.Pipeline: every record ends in exactly one ``record_processed``
line."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from aiokafka import TopicPartition
from structlog.typing import EventDict

from consumer.config import MatchSpec, RetrySettings, RouteSpec
from consumer.dispatch.pipeline import Pipeline
from consumer.dispatch.routing import Router
from consumer.engine.work import Work
from consumer.events import Event
from consumer.handlers import Clients, Context, Handler
from consumer.outcomes import DONE, DeadLettered, Done, Failed, Handover, Outcome, Retry, Skipped
from consumer.testing import ManualClock
from tests.fakes import (
    FakeRecord,
    FakeSink,
    cover_event,
    make_work,
    side_topics,
    smn,
    thumbnail_event,
)

TP = TopicPartition("vod-cover-events", 3)


async def done(event: Event, ctx: Context) -> Outcome:
    return DONE


async def already_there(event: Event, ctx: Context) -> Outcome:
    return Skipped("cover already set")


async def hand_over(event: Event, ctx: Context) -> Outcome:
    return Handover("API unavailable")


async def boom(event: Event, ctx: Context) -> Outcome:
    raise RuntimeError("VOD said 500")


async def gives_up(event: Event, ctx: Context) -> Outcome:
    return Failed("asset deleted")


async def returns_a_string(event: Event, ctx: Context) -> Outcome:
    return "done"  # type: ignore[return-value]  # the mistake under test


async def annotates(event: Event, ctx: Context) -> Outcome:
    ctx.annotate(api_calls=2, new_cover="https://cdn.example/Cover1.jpg")
    return DONE


async def annotates_reason(event: Event, ctx: Context) -> Outcome:
    ctx.annotate(reason="set from the first snapshot")
    return DONE


async def annotates_event(event: Event, ctx: Context) -> Outcome:
    ctx.annotate(event="cover_set", attempt=99)
    ctx.notes["self"] = "me"  # the dict itself, as ctx.notes is public
    ctx.notes[7] = "not a name"  # type: ignore[index]  # the mistake under test
    return DONE


async def logs_its_own_line(event: Event, ctx: Context) -> Outcome:
    ctx.log.info("calling_vod")
    return DONE


HANDLERS: dict[str, Handler] = {
    name: handler
    for name, handler in [
        ("done", done),
        ("already_there", already_there),
        ("hand_over", hand_over),
        ("boom", boom),
        ("gives_up", gives_up),
        ("returns_a_string", returns_a_string),
        ("annotates", annotates),
        ("annotates_reason", annotates_reason),
        ("logs_its_own_line", logs_its_own_line),
        ("annotates_event", annotates_event),
    ]
}


def pipeline(clients: Clients, *handlers: str, sink: FakeSink | None = None) -> Pipeline:
    """Covers go to ``handlers``; every other event has no route. Backoff sleeps are recorded."""
    routes = [RouteSpec(match=MatchSpec(event_type="coverComplete"), handlers=list(handlers))]
    router = Router.from_specs(routes, resolve_handler=HANDLERS.__getitem__)
    side = side_topics(sink or FakeSink())
    return Pipeline(
        router, clients, structlog.get_logger(), side, RetrySettings(), clock=ManualClock()
    )


def work(
    value: bytes | None, offset: int = 42, headers: tuple[tuple[str, bytes | None], ...] = ()
) -> Work:
    record = FakeRecord(
        TP.topic, TP.partition, offset, b"key", value, timestamp=1_700_000_000, headers=headers
    )
    return make_work(record)


def outcome_line(logs: list[EventDict]) -> EventDict:
    lines = [entry for entry in logs if entry["event"] == "record_processed"]
    assert len(lines) == 1, lines
    return lines[0]


async def test_a_handled_event_logs_one_line_with_its_coordinates_and_outcome(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "done").process(work(cover_event("a1"), offset=7))

    assert outcome == DONE
    line = outcome_line(logs)
    assert {k: line[k] for k in ("topic", "partition", "offset", "asset_id", "event_type")} == {
        "topic": "vod-cover-events",
        "partition": 3,
        "offset": 7,
        "asset_id": "a1",
        "event_type": "coverComplete",
    }
    assert (line["outcome"], line["handler"], line["log_level"]) == ("done", "done", "info")
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0


async def test_a_records_trace_ids_are_on_its_outcome_line_and_its_handlers_lines(
    clients: Clients, logs: list[EventDict]
) -> None:
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traced = work(cover_event("a1"), headers=(("traceparent", f"00-{trace}-{span}-01".encode()),))

    await pipeline(clients, "logs_its_own_line").process(traced)

    for event in ("calling_vod", "record_processed"):
        [line] = [entry for entry in logs if entry["event"] == event]
        assert (line["trace_id"], line["span_id"]) == (trace, span)


async def test_a_record_without_a_trace_has_no_trace_fields(
    clients: Clients, logs: list[EventDict]
) -> None:
    await pipeline(clients, "done").process(work(cover_event("a1")))

    assert "trace_id" not in outcome_line(logs)


async def test_an_event_in_an_smn_envelope_is_handled_like_a_bare_one(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "done").process(work(smn(cover_event("a1"))))

    assert outcome == DONE
    assert outcome_line(logs)["asset_id"] == "a1"


async def test_an_event_with_no_route_is_skipped_with_the_reason(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "done").process(work(thumbnail_event("t1")))

    assert isinstance(outcome, Skipped)
    line = outcome_line(logs)
    assert (line["outcome"], line["handler"]) == ("skipped", None)
    assert line["reason"].startswith("no route for event_type=thumbnailComplete")


async def test_an_invalid_record_is_dead_lettered_with_its_reason_and_error_class(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    outcome = await pipeline(clients, "done", sink=sink).process(work(b"{not json"))

    assert isinstance(outcome, DeadLettered)
    assert [(topic, value) for topic, _, value, _ in sink.sent] == [
        ("vod-cover-events.dlq", b"{not json")
    ]
    line = outcome_line(logs)
    assert (line["outcome"], line["error"], line["log_level"]) == (
        "dead_lettered",
        "InvalidRecord",
        "error",
    )
    assert line["reason"].startswith("value: not valid JSON")
    assert (line["asset_id"], line["event_type"], line["handler"]) == (None, None, None)


async def test_an_ignored_record_is_skipped_with_its_reason(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "done").process(
        work(smn(b"please confirm", type="SubscriptionConfirmation"))
    )

    assert isinstance(outcome, Skipped)
    line = outcome_line(logs)
    assert line["outcome"] == "skipped"
    assert "SubscriptionConfirmation" in line["reason"]


async def test_a_handler_skipping_ends_the_route_as_skipped(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "already_there", "boom").process(work(cover_event("a1")))

    assert outcome == Skipped("cover already set")
    line = outcome_line(logs)
    assert (line["outcome"], line["handler"], line["reason"]) == (
        "skipped",
        "already_there",
        "cover already set",
    )


async def test_a_handler_failing_is_dead_lettered_and_logged_at_error_level(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "gives_up").process(work(cover_event("a1")))

    assert outcome == DeadLettered("asset deleted")
    line = outcome_line(logs)
    assert (line["outcome"], line["reason"], line["log_level"]) == (
        "dead_lettered",
        "asset deleted",
        "error",
    )


async def test_a_handler_raising_unexpectedly_is_retried_then_dead_lettered_without_raising(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "boom", "done").process(work(cover_event("a1")))

    reason = "unexpected error, 3 attempts: RuntimeError: VOD said 500"
    assert outcome == DeadLettered(reason, "RuntimeError")
    line = outcome_line(logs)
    assert (line["outcome"], line["handler"], line["error"]) == (
        "dead_lettered",
        "boom",
        "RuntimeError",
    )
    assert (line["reason"], line["attempt"]) == (reason, 3)
    assert isinstance(line["exc_info"], RuntimeError)


async def test_handover_passes_the_event_to_the_next_handler(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "hand_over", "done").process(work(cover_event("a1")))

    assert isinstance(outcome, Done)
    assert (outcome_line(logs)["outcome"], outcome_line(logs)["handler"]) == ("done", "done")


async def test_handover_by_the_last_handler_dead_letters_the_record(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "hand_over", "hand_over").process(work(cover_event("a1")))

    assert isinstance(outcome, DeadLettered)
    line = outcome_line(logs)
    assert (line["outcome"], line["handler"]) == ("dead_lettered", "hand_over")
    assert line["reason"] == "every handler handed over; last: API unavailable"


async def test_a_handler_returning_a_non_outcome_dead_letters_the_record(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "returns_a_string", "done").process(work(cover_event("a1")))

    assert isinstance(outcome, DeadLettered)
    line = outcome_line(logs)
    assert (line["outcome"], line["handler"]) == ("dead_lettered", "returns_a_string")
    assert line["reason"] == "handler returned str, not an outcome"


async def test_annotations_appear_on_the_outcome_line(
    clients: Clients, logs: list[EventDict]
) -> None:
    await pipeline(clients, "annotates").process(work(cover_event("a1")))

    line = outcome_line(logs)
    assert (line["api_calls"], line["new_cover"]) == (2, "https://cdn.example/Cover1.jpg")


async def test_a_handler_logging_its_own_line_still_gives_one_outcome_line(
    clients: Clients, logs: list[EventDict]
) -> None:
    await pipeline(clients, "logs_its_own_line").process(work(cover_event("a1")))

    own = [entry for entry in logs if entry["event"] == "calling_vod"]
    assert [(e["handler"], e["asset_id"], e["offset"]) for e in own] == [
        ("logs_its_own_line", "a1", 42)
    ]
    assert outcome_line(logs)["outcome"] == "done"


async def test_annotating_a_reserved_field_name_does_not_make_process_raise(
    clients: Clients, logs: list[EventDict]
) -> None:
    outcome = await pipeline(clients, "annotates_reason").process(work(cover_event("a1")))

    assert outcome == DONE
    assert outcome_line(logs)["outcome"] == "done"


async def test_annotating_the_lines_own_argument_names_does_not_make_process_raise(
    clients: Clients, logs: list[EventDict]
) -> None:
    # ``event`` (and ``self``) are the logger call's own arguments: such a note made the
    # outcome line raise, after the outcome, so the record stuck and consumption held.
    outcome = await pipeline(clients, "annotates_event").process(work(cover_event("a1")))

    assert outcome == DONE
    line = outcome_line(logs)
    assert (line["outcome"], line["attempt"], "self" in line) == ("done", 1, False)


async def test_a_handler_past_its_timeout_is_cancelled_and_retried_as_transient(
    clients: Clients, logs: list[EventDict]
) -> None:
    cancelled: list[int] = []

    async def hangs(event: Event, ctx: Context) -> Outcome:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(ctx.attempt)
        return DONE

    routes = [RouteSpec(match=MatchSpec(), handlers=["hangs"])]
    router = Router.from_specs(routes, resolve_handler={"hangs": hangs}.__getitem__)
    sink = FakeSink()
    retry = RetrySettings(quick_attempts=2)
    piped = Pipeline(
        router, clients, structlog.get_logger(), side_topics(sink), retry, 0.01, clock=ManualClock()
    )

    outcome = await piped.process(work(cover_event("a1")))

    assert cancelled == [1, 2]
    assert outcome.kind == "retried"
    assert (outcome.reason or "").startswith("TimeoutError")
    assert [topic for topic, *_ in sink.sent] == ["vod-cover-events.retry.1m"]


async def test_only_the_very_last_possible_call_is_marked_as_the_last_try(
    clients: Clients,
) -> None:
    seen: list[tuple[int, bool]] = []

    async def waits(event: Event, ctx: Context) -> Outcome:
        seen.append((ctx.attempt, ctx.last_try))
        return Retry("not yet")

    routes = [RouteSpec(match=MatchSpec(), handlers=["waits"])]
    router = Router.from_specs(routes, resolve_handler={"waits": waits}.__getitem__)
    retry = RetrySettings(quick_attempts=2)
    piped = Pipeline(
        router, clients, structlog.get_logger(), side_topics(FakeSink()), retry, clock=ManualClock()
    )
    from_last_tier = FakeRecord(
        "vod-cover-events.retry.10m",
        0,
        7,
        b"key",
        cover_event("a1"),
        headers=(
            ("cc-origin-topic", b"vod-cover-events"),
            ("cc-origin-partition", b"3"),
            ("cc-origin-offset", b"42"),
            ("cc-step", b"0"),
            ("cc-attempt", b"4"),
            ("cc-tier", b"1"),
        ),
    )

    await piped.process(work(cover_event("a1")))
    await piped.process(make_work(from_last_tier))

    assert seen == [(1, False), (2, False), (5, False), (6, True)]


class BrokenRouter(Router):
    """A bug in the pipeline's own code path: routing raises."""

    def route(self, event: Event) -> None:
        raise KeyError("route table corrupted")


async def test_an_error_of_the_pipeline_itself_dead_letters_the_record_with_the_reason(
    clients: Clients, logs: list[EventDict]
) -> None:
    sink = FakeSink()
    piped = Pipeline(
        BrokenRouter([]),
        clients,
        structlog.get_logger(),
        side_topics(sink),
        RetrySettings(),
        clock=ManualClock(),
    )

    outcome = await piped.process(work(cover_event("a1")))

    assert outcome.kind == "dead_lettered"
    assert outcome.reason == "internal error: KeyError: 'route table corrupted'"
    [(topic, _, value, headers)] = sink.sent
    assert topic == "vod-cover-events.dlq"
    assert value == cover_event("a1")
    assert headers["cc-error"] == "KeyError"
    line = outcome_line(logs)
    assert (line["outcome"], line["log_level"]) == ("dead_lettered", "error")
    assert "failed" not in {entry.get("outcome") for entry in logs}


class Interrupted(BaseException):
    """Not an Exception: user code may raise anything."""


@pytest.mark.parametrize(
    "raised",
    [asyncio.CancelledError("the handler's own"), SystemExit(3), Interrupted("odd")],
    ids=["CancelledError", "SystemExit", "BaseException"],
)
async def test_a_handler_raising_a_base_exception_gets_an_outcome_and_the_caller_goes_on(
    clients: Clients, logs: list[EventDict], raised: BaseException
) -> None:
    calls: list[int] = []

    async def rude(event: Event, ctx: Context) -> Outcome:
        calls.append(ctx.attempt)
        raise raised

    routes = [RouteSpec(match=MatchSpec(), handlers=["rude"])]
    router = Router.from_specs(routes, resolve_handler={"rude": rude}.__getitem__)
    sink = FakeSink()
    piped = Pipeline(
        router,
        clients,
        structlog.get_logger(),
        side_topics(sink, tiers=()),
        RetrySettings(),
        clock=ManualClock(),
    )

    outcome = await piped.process(work(cover_event("a1")))

    assert calls == [1, 2, 3]  # an unexpected error: its attempts, then a dead letter
    assert outcome.kind == "dead_lettered"
    assert (outcome.reason or "").startswith(
        f"unexpected error, 3 attempts: {type(raised).__name__}"
    )
    line = outcome_line(logs)
    assert (line["handler"], line["error"]) == ("rude", type(raised).__name__)


async def test_cancelling_the_processing_task_itself_still_cancels_it(clients: Clients) -> None:
    started = asyncio.Event()

    async def waits(event: Event, ctx: Context) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        return DONE

    routes = [RouteSpec(match=MatchSpec(), handlers=["waits"])]
    router = Router.from_specs(routes, resolve_handler={"waits": waits}.__getitem__)
    piped = Pipeline(
        router, clients, structlog.get_logger(), side_topics(FakeSink()), RetrySettings()
    )
    task = asyncio.create_task(piped.process(work(cover_event("a1"))))
    await asyncio.wait_for(started.wait(), 1)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)


async def test_the_last_outcome_time_is_the_wall_clock_time_the_record_reached_it(
    clients: Clients,
) -> None:
    clock = ManualClock(now=50.0, wall_start=1_700_000_000.0)
    side = side_topics(FakeSink())
    routes = [RouteSpec(match=MatchSpec(event_type="coverComplete"), handlers=["done"])]
    router = Router.from_specs(routes, resolve_handler=HANDLERS.__getitem__)
    pipe = Pipeline(router, clients, structlog.get_logger(), side, RetrySettings(), clock=clock)
    assert pipe.last_outcome_at == 0.0  # none yet

    clock.advance(10)
    await pipe.process(work(cover_event("a1")))
    clock.advance(30)  # read on a later scrape,
    clock.set_wall(clock.wall() + 3600)  # after the wall clock stepped (NTP, a suspend)

    assert pipe.last_outcome_at == 1_700_000_010.0
