"""consumer.redelivery.sidetopics: what a retry or a dead letter writes, and what it does
when the record cannot be written as it is."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from prometheus_client import REGISTRY

from consumer import logs
from consumer.kafka.sink import RecordTooLarge
from consumer.logs import MASK
from consumer.outcomes import DeadLettered, Retried
from consumer.redelivery.headers import Trail
from consumer.redelivery.sidetopics import SideTopics
from tests.fakes import FakeRecord, FakeSink, side_topics

MAIN = "vod-cover-events"
LIMIT = 20_000


def record(value: bytes, headers: tuple[tuple[str, bytes | None], ...] = ()) -> FakeRecord:
    return FakeRecord(MAIN, 0, 5, b"k", value, timestamp=1, headers=headers)


def trail(rec: FakeRecord) -> Trail:
    return Trail.of(rec.topic, rec.partition, rec.offset, rec.timestamp, rec.headers)


async def dead_letter(
    side: SideTopics, rec: FakeRecord, reason: str = "asset gone"
) -> DeadLettered:
    return await side.dead_letter(rec, trail(rec), reason, "VodPermanentError", "fallback", 2)


async def test_a_dead_letter_that_fits_keeps_value_headers_and_history() -> None:
    sink = FakeSink(LIMIT)
    rec = record(b"v" * 100, (("traceparent", b"00-x"),))

    outcome = await dead_letter(side_topics(sink), rec)

    [(topic, key, value, headers)] = sink.sent
    assert (topic, key, value) == (f"{MAIN}.dlq", b"k", b"v" * 100)
    assert headers["traceparent"] == "00-x"
    assert (headers["cc-reason"], headers["cc-handler"]) == ("asset gone", "fallback")
    assert outcome == DeadLettered("asset gone", "VodPermanentError")


async def test_a_dead_letter_too_large_is_written_once_with_the_head_length_and_digest() -> None:
    sink = FakeSink(LIMIT)
    value = bytes(range(256)) * 100  # 25,600 bytes: the value alone is over the limit
    rec = record(value, (("tenant", b"acme"),))

    outcome = await dead_letter(side_topics(sink), rec)

    [(_, _, head, headers)] = sink.sent
    assert head is not None
    assert sink.refused == 1  # the whole record, once: no endless retry
    assert 0 < len(head) < len(value)
    assert value.startswith(head)
    assert headers["cc-value-length"] == str(len(value))
    assert headers["cc-value-sha256"] == hashlib.sha256(value).hexdigest()
    assert headers["tenant"] == "acme"
    expected = f"asset gone (too large to dead-letter whole: value truncated to {len(head)}"
    assert outcome.reason == expected + f" of {len(value)} bytes)"
    assert headers["cc-reason"] == outcome.reason


async def test_own_headers_too_large_to_fit_are_dropped_and_the_reason_says_so() -> None:
    sink = FakeSink(LIMIT)
    rec = record(b"v" * 100, (("huge", b"h" * LIMIT),))

    outcome = await dead_letter(side_topics(sink), rec)

    [(_, _, value, headers)] = sink.sent
    assert value == b"v" * 100
    assert "huge" not in headers
    assert outcome.reason.endswith("of 100 bytes, own headers dropped)")


async def test_a_dead_letter_that_never_fits_raises_instead_of_retrying_for_ever() -> None:
    sink = FakeSink(max_request_size=100)  # not even the history headers fit

    with pytest.raises(RecordTooLarge):
        await dead_letter(side_topics(sink), record(b"v"))

    assert sink.refused == 4  # the whole, then three ever smaller heads: then it stops


async def test_a_retry_too_large_for_its_tier_becomes_a_truncated_dead_letter() -> None:
    sink = FakeSink(LIMIT)
    value = b"x" * (LIMIT - 50)  # fits alone, not with the retry's history headers
    rec = record(value)

    outcome = await side_topics(sink).retry(
        rec, trail(rec), side_topics(sink).tiers[0], 0, 3, "busy", "h0"
    )

    assert isinstance(outcome, DeadLettered)
    assert outcome.reason.startswith(f"busy; too large for retry tier {MAIN}.retry.1m (too large")
    [(topic, _, _, headers)] = sink.sent
    assert topic == f"{MAIN}.dlq"
    assert (headers["cc-handler"], headers["cc-attempt"]) == ("h0", "3")


async def test_a_retry_that_fits_goes_to_its_tier() -> None:
    sink = FakeSink(LIMIT)
    rec = record(b"v")

    outcome = await side_topics(sink).retry(
        rec, trail(rec), side_topics(sink).tiers[0], 0, 1, "busy"
    )

    assert isinstance(outcome, Retried)
    assert sink.sent[0][0] == f"{MAIN}.retry.1m"


async def test_secrets_in_a_reason_never_reach_the_written_headers() -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    logs.add_secret(secret)
    sink = FakeSink(LIMIT)
    rec = record(b"v")

    outcome = await side_topics(sink).dead_letter(
        rec, trail(rec), f"RuntimeError: bad token {secret}", f"err {secret}", "h", 1
    )

    headers = sink.sent[0][3]
    assert headers["cc-reason"] == f"RuntimeError: bad token {MASK}"
    assert headers["cc-error"] == f"err {MASK}"
    assert secret not in outcome.reason


@pytest.mark.parametrize(
    ("error", "label"),
    [
        ("VodPermanentError", "VodPermanentError"),  # ours
        ("InvalidRecord", "InvalidRecord"),
        ("ZeroDivisionError", "ZeroDivisionError"),  # Python's
        ("MyCompanyCoverError", "other"),  # a handler's own class
        (None, "none"),
    ],
)
async def test_the_dead_letter_counter_is_labelled_from_a_bounded_set(
    error: str | None, label: str
) -> None:
    sink = FakeSink(LIMIT)
    before = REGISTRY.get_sample_value("cover_consumer_dead_letters_total", {"error": label}) or 0
    rec = record(b"v")

    await side_topics(sink).dead_letter(rec, trail(rec), "why", error, "h", 1)

    after = REGISTRY.get_sample_value("cover_consumer_dead_letters_total", {"error": label})
    assert after == before + 1
    [(_, _, _, headers)] = sink.sent
    assert headers["cc-error"] == (error or "")  # the header keeps the exact class
