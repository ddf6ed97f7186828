"""Retries, delayed retry tiers and dead letters against the real broker."""

from __future__ import annotations

import io
import json
import time

from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from structlog.testing import capture_logs
from structlog.typing import EventDict

from consumer import DONE, Context, Event, Outcome
from consumer.devtools.broker import create_topic
from consumer.outcomes import Handover, Retry
from consumer.redelivery.ops import dlq_replay
from tests.support import (
    committed,
    cover_event,
    header_map,
    in_process,
    produce,
    read_topic,
    settings_for,
    until,
)

FAST_RETRY = {"quick_base_delay": 0.01, "quick_max_delay": 0.05, "quick_budget": 0.5}


def outcomes(logs: list[EventDict]) -> list[EventDict]:
    return [entry for entry in logs if entry["event"] == "record_processed"]


async def test_transient_failure_then_success_on_the_second_quick_attempt(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 1)
    await produce(bootstrap, name, [(None, cover_event("a1"), 0)])
    calls: list[int] = []

    async def flaky(event: Event, ctx: Context) -> Outcome:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise TimeoutError("VOD did not answer")
        return DONE

    settings = settings_for(bootstrap, name, "flaky", retry=FAST_RETRY)
    with capture_logs() as logs:
        async with in_process(settings, {"flaky": flaky}):
            await until(lambda: bool(outcomes(logs)))

    [line] = outcomes(logs)
    assert (line["outcome"], line["attempt"], calls) == ("done", 2, [1, 2])
    assert await read_topic(bootstrap, f"{name}.retry.1s") == []


async def test_retry_after_comes_back_from_the_right_tier_when_due_and_resumes_its_step(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 1)
    await produce(bootstrap, name, [(None, cover_event("late"), 0)])
    await produce(bootstrap, name, [(None, cover_event(f"b{i}"), 0) for i in range(30)])
    first_calls: list[str] = []
    waits: list[tuple[str, int, float]] = []

    async def first(event: Event, ctx: Context) -> Outcome:
        first_calls.append(event.asset_id or "")
        return Handover("go on")

    async def waiter(event: Event, ctx: Context) -> Outcome:
        waits.append((event.asset_id or "", ctx.attempt, time.time()))
        if event.asset_id == "late" and ctx.attempt == 1:
            return Retry("cover not there yet", after=2)
        return DONE

    settings = settings_for(
        bootstrap,
        name,
        "first",
        "waiter",
        retry={**FAST_RETRY, "tiers": [{"delay": 1}, {"delay": 3}]},
    )
    with capture_logs() as logs:
        async with in_process(settings, {"first": first, "waiter": waiter}):
            await until(lambda: sum(1 for w in waits if w[0] == "late") == 2, timeout=30)

    late = [w for w in waits if w[0] == "late"]
    [retried] = [line for line in outcomes(logs) if line["outcome"] == "retried"]
    assert retried["retry_topic"] == f"{name}.retry.3s"  # the first tier covering 2 s
    assert late[1][2] >= retried["due"]  # never before it is due
    assert late[1][1] == 2  # the second call of the step that asked
    assert first_calls.count("late") == 1  # the step before it did not run again
    others_done = [w[2] for w in waits if w[0] != "late"]
    assert len(others_done) == 30
    assert max(others_done) < late[1][2]  # the main topic kept flowing meanwhile


async def test_exhausted_retries_land_in_the_dead_letter_topic_with_every_header(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 1)
    value = cover_event("stuck")
    await produce(bootstrap, name, [(b"stuck", value, 0)])

    async def never(event: Event, ctx: Context) -> Outcome:
        return Retry("thumbnails still processing")

    settings = settings_for(
        bootstrap, name, "never", retry={**FAST_RETRY, "tiers": [{"delay": 0.5}, {"delay": 1}]}
    )
    with capture_logs() as logs:
        async with in_process(settings, {"never": never}):
            await until(lambda: any(o["outcome"] == "dead_lettered" for o in outcomes(logs)))

    [letter] = await read_topic(bootstrap, f"{name}.dlq")
    headers = header_map(letter)
    assert (letter.key, letter.value) == (b"stuck", value)
    assert headers["cc-reason"] == "retries exhausted: thumbnails still processing"
    assert (headers["cc-handler"], headers["cc-attempt"]) == ("never", "9")  # 3 quick x 3 passes
    assert (headers["cc-origin-topic"], headers["cc-origin-partition"]) == (name, "0")
    assert headers["cc-origin-offset"] == "0"
    assert headers["cc-group"] == name
    assert headers["cc-host"]
    assert "cc-error" in headers
    assert int(headers["cc-first-seen-ms"]) <= int(headers["cc-last-tried-ms"])
    assert [o["outcome"] for o in outcomes(logs)] == ["retried", "retried", "dead_lettered"]
    assert (await committed(bootstrap, name, name, 1))[0] == 1


async def test_poison_records_are_dead_lettered_and_valid_ones_flow_around_them(
    bootstrap: str, name: str
) -> None:
    poison: list[bytes] = [
        b"not json",
        b"\x00\xff\xfe binary",
        b"",
        b'{"event_type": "coverComplete", "cover_info": {"status": "FAI',
        b'{"event_type": "coverComplete", "cover_info": {"status": 7, "asset_id": []}}',
        b'{"event_type": "coverComplete", "cover_info": {"status": "FAILED"}}',
        json.dumps({"event_type": "coverComplete", "pad": "x" * 1_000_000}).encode(),
        json.dumps({"type": "Notification", "message": '{"event_type": 5}'}).encode(),
    ]
    values = []
    for i, bad in enumerate(poison):
        values += [cover_event(f"v{i}-{n}") for n in range(5)] + [bad]
    await create_topic(bootstrap, name, 1)
    await produce(bootstrap, name, [(None, v, 0) for v in values], max_request_size=2**21)

    settings = settings_for(bootstrap, name, "log")
    with capture_logs() as logs:
        async with in_process(settings, {"log": _log}):
            await until(lambda: len(outcomes(logs)) == len(values))

    by_outcome: dict[str, list[EventDict]] = {}
    for line in outcomes(logs):
        by_outcome.setdefault(line["outcome"], []).append(line)
    assert len(by_outcome["done"]) == 40
    assert len(by_outcome["dead_lettered"]) == len(poison)
    reasons = [line["reason"] for line in by_outcome["dead_lettered"]]
    assert reasons[0].startswith("value: not valid JSON")
    assert reasons[5] == "cover_info.asset_id: Field required"
    assert reasons[7].startswith("message.")
    letters = await read_topic(bootstrap, f"{name}.dlq")
    assert sorted(letter.value for letter in letters) == sorted(poison)  # bytes unchanged


async def _log(event: Event, ctx: Context) -> Outcome:
    return DONE


async def test_the_guard_trips_on_a_flood_of_failures_and_commits_nothing_past_it(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 1)
    await produce(bootstrap, name, [(None, b"broken", 0) for _ in range(40)])
    settings = settings_for(
        bootstrap,
        name,
        "log",
        dead_letter={"guard_window": 20, "guard_threshold": 0.5, "guard_min_records": 10},
    )
    with capture_logs() as logs:
        async with in_process(settings, {"log": _log}) as parts:
            await until(lambda: parts.guard.tripped)
            await until(lambda: parts.engine.paused == frozenset(parts.engine.committed()))
            await parts.engine.commit()
            held = parts.engine.in_flight
            gauge = REGISTRY.get_sample_value("cover_consumer_dead_letter_guard_tripped")

    trips = [entry for entry in logs if entry["event"] == "dead_letter_guard_tripped"]
    assert len(trips) == 1
    assert trips[0]["log_level"] == "critical"
    assert gauge == 1  # the alert's series
    assert len(await read_topic(bootstrap, f"{name}.dlq")) == 9
    assert held >= 1  # the tenth waits, unwritten
    assert (await committed(bootstrap, name, name, 1))[0] == 9


async def test_original_headers_travel_through_tiers_and_the_dlq_and_a_replay_restores_them(
    bootstrap: str, name: str
) -> None:
    await create_topic(bootstrap, name, 1)
    own = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    own += [("tenant", b"acme"), ("ce_type", b"com.huawei.vod.cover")]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(name, cover_event("h1"), key=b"h1", partition=0, headers=own)
    finally:
        await producer.stop()

    async def never(event: Event, ctx: Context) -> Outcome:
        return Retry("not yet")

    settings = settings_for(
        bootstrap, name, "never", retry={**FAST_RETRY, "tiers": [{"delay": 0.5}]}
    )
    with capture_logs() as logs:
        async with in_process(settings, {"never": never}):
            await until(lambda: any(o["outcome"] == "dead_lettered" for o in outcomes(logs)))

    [tiered] = await read_topic(bootstrap, f"{name}.retry.0.5s")
    [letter] = await read_topic(bootstrap, f"{name}.dlq")
    for record in (tiered, letter):
        assert [(k, v) for k, v in record.headers if not k.startswith("cc-")] == own
    assert header_map(letter)["cc-reason"] == "retries exhausted: not yet"

    await dlq_replay(settings, io.StringIO())

    replayed = (await read_topic(bootstrap, name))[-1]
    assert (replayed.key, replayed.value) == (b"h1", cover_event("h1"))
    assert [(k, v) for k, v in replayed.headers if k != "cc-replay-of"] == own
    assert header_map(replayed)["cc-replay-of"].startswith(f"{name}.dlq/")
