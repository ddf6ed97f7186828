"""consumer.redelivery.headers: reading history headers, carrying a record's own ones."""

from __future__ import annotations

from consumer.redelivery.headers import Trail, carried, due_at, header, unreadable

BINARY_KEY = b"\xff\xfe".decode("utf-8", "surrogateescape")  # as the lenient reader hands it


def test_a_header_without_a_value_reads_as_absent() -> None:
    headers = [("cc-due-ms", None), ("cc-origin-topic", None)]

    assert header(headers, "cc-due-ms") is None
    assert due_at(headers) is None
    assert Trail.of("t", 1, 2, 3, headers) == Trail("t", 1, 2, 3)


def test_carried_keeps_a_records_own_headers_in_order_and_drops_ours() -> None:
    headers = [("traceparent", b"00-x"), ("cc-attempt", b"3"), ("tenant", None)]

    assert carried(headers) == [("traceparent", b"00-x"), ("tenant", None)]


def test_carried_renames_a_key_that_is_not_utf8_keeping_its_bytes_and_value() -> None:
    assert carried([(BINARY_KEY, b"v")]) == [("cc-invalid-key-fffe", b"v")]


def test_unreadable_names_a_binary_key_or_an_empty_history_header() -> None:
    assert unreadable([("tenant", None), ("traceparent", b"x")]) is None
    assert unreadable([(BINARY_KEY, b"v")]) == "header key is not UTF-8: b'\\xff\\xfe'"
    assert unreadable([("cc-step", None)]) == "header cc-step has no value"


def test_a_due_header_that_is_no_plain_number_reads_as_due_now_never_raises() -> None:
    # str.isdigit() accepts "²" and "١٢" (not ASCII digits); 5,000 digits is past int()'s
    # limit, 400 past a float's range: each crashed the consume loop (exit 1, at every start).
    for value in ("²", "١٢٣", "9" * 5000, "9" * 400, "-5", "1e3", " 12", ""):
        assert due_at([("cc-due-ms", value.encode())]) is None, value


def test_a_due_header_later_than_its_tier_allows_is_capped() -> None:
    # A tier record is due at most its tier's delay after it was written: a forged or
    # corrupt due (year 33658) would hold the tier partition, unfetched, for ever.
    headers = [("cc-due-ms", b"999999999999999")]

    assert due_at(headers, latest=1_700_000_060.0) == 1_700_000_060.0
    assert due_at([("cc-due-ms", b"1700000030000")], latest=1_700_000_060.0) == 1_700_000_030.0
    assert due_at(headers) == 999_999_999_999.999


def test_negative_history_numbers_read_as_a_fresh_start_of_that_count() -> None:
    # cc-step -3 indexed the route from its end: an IndexError dead-lettered the record as
    # an internal error, and -1 ran the last handler before the first.
    headers = [
        ("cc-origin-topic", b"t"),
        ("cc-step", b"-3"),
        ("cc-attempt", b"-99"),
        ("cc-tier", b"-7"),
    ]

    trail = Trail.of("t.retry.1m", 0, 5, 9, headers)

    assert (trail.step, trail.attempt, trail.tier) == (0, 0, -1)
