"""consumer.dispatch.intake.prepare: a record's event and asset key, whatever envelope or
CloudEvents mode carries it."""

from __future__ import annotations

import json

from consumer.dispatch.intake import prepare
from consumer.errors import InvalidRecord
from consumer.events import CoverComplete
from tests.fakes import FakeRecord, cover_event


def record(value: bytes, headers: tuple[tuple[str, bytes | None], ...] = ()) -> FakeRecord:
    return FakeRecord("vod-cover-events", 0, 7, None, value, headers=headers)


def test_a_binary_mode_cloudevent_is_keyed_by_its_asset() -> None:
    headers = (("ce_specversion", b"1.0"), ("ce_id", b"x"), ("ce_type", b"vod"))

    key, payload = prepare(record(cover_event("a1"), headers))

    assert key == "a1"
    assert isinstance(payload, CoverComplete)


def test_a_structured_cloudevent_is_keyed_by_the_asset_in_its_data() -> None:
    value = json.dumps(
        {
            "specversion": "1.0",
            "id": "x",
            "source": "s",
            "type": "t",
            "data": json.loads(cover_event("a2")),
        }
    ).encode()

    key, payload = prepare(record(value, (("content-type", b"application/cloudevents+json"),)))

    assert key == "a2"
    assert isinstance(payload, CoverComplete)


def test_an_mfs_envelope_with_ingest_headers_is_keyed_by_its_asset() -> None:
    value = json.dumps({"message": cover_event("a3").decode()}).encode()
    headers = (("ingest-transport", b"mfs"), ("ingest-message-id", b"sha256:ab"))

    key, _ = prepare(record(value, headers))

    assert key == "a3"


def test_a_binary_mode_record_of_another_spec_version_has_no_key_and_a_reason() -> None:
    key, payload = prepare(record(cover_event("a1"), (("ce_specversion", b"0.3"),)))

    assert key is None
    assert isinstance(payload, InvalidRecord)
    assert payload.reason.startswith("header ce_specversion:")
