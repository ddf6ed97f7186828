"""consumer.events.decode: record bytes -> a typed event, or a RecordError with a reason."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from consumer.errors import IgnoredRecord, InvalidRecord, RecordError
from consumer.events import (
    CoverComplete,
    OtherEvent,
    Snapshot,
    ThumbnailComplete,
    decode,
    decode_record,
)
from tests.fakes import cover_event, smn, thumbnail_event

# The coverComplete example from the VOD docs, verbatim.
OFFICIAL_EXAMPLE = b"""{"event_type": "coverComplete",
 "cover_info": {"status": "FAILED", "title": "XC1",
                "asset_id": "13d570ca574035a3efd7014689c34507",
                "error_code": "VOD.10013", "error_msg": "null",
                "cover_type": "HEAD_FRAME_COVER"}}"""


def as_bytes(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def invalid_reason(value: bytes | None) -> str:
    with pytest.raises(InvalidRecord) as info:
        decode(value)
    return info.value.reason


# -- valid events ------------------------------------------------------------------------


def test_official_cover_complete_example_decodes_with_null_error_msg_as_none() -> None:
    event = decode(OFFICIAL_EXAMPLE)

    assert isinstance(event, CoverComplete)
    assert event.asset_id == "13d570ca574035a3efd7014689c34507"
    assert event.status == "FAILED"
    assert event.cover_type == "HEAD_FRAME_COVER"
    assert event.cover_info.title == "XC1"
    assert event.cover_info.error_code == "VOD.10013"
    assert event.cover_info.error_msg is None


def test_succeeded_cover_carries_its_cover_urls() -> None:
    event = decode(cover_event("a1", status="SUCCEED"))

    assert isinstance(event, CoverComplete)
    assert event.status == "SUCCEED"
    assert event.cover_info.cover_urls == (
        Snapshot(offset=0, url="https://cdn.example/a1/Cover0.jpg"),
    )


def test_thumbnail_complete_decodes_with_its_samples() -> None:
    event = decode(thumbnail_event("t1"))

    assert isinstance(event, ThumbnailComplete)
    assert (event.asset_id, event.status, event.cover_type) == ("t1", "SUCCEED", None)
    assert [s.offset for s in event.thumbnail_info.sample] == [0]
    assert event.thumbnail_info.dots == ()


@pytest.mark.parametrize("spelling", ["CoverComplete", "COVERCOMPLETE", "covercomplete"])
def test_event_type_is_matched_case_insensitively_and_canonicalised(spelling: str) -> None:
    payload = json.loads(cover_event("a1"))
    payload["event_type"] = spelling

    event = decode(as_bytes(payload))

    assert isinstance(event, CoverComplete)
    assert event.event_type == "coverComplete"


def test_lowercase_status_and_cover_type_are_upper_cased() -> None:
    event = decode(cover_event("a1", status="succeed", cover_type="head_frame_cover"))

    assert (event.status, event.cover_type) == ("SUCCEED", "HEAD_FRAME_COVER")


def test_unknown_fields_at_top_level_and_nested_are_tolerated() -> None:
    payload = json.loads(cover_event("a1"))
    payload["region"] = "cn-north-4"
    payload["cover_info"]["new_field"] = {"anything": [1, 2]}
    payload["cover_info"]["cover_urls"] = [{"offset": 1, "url": "u", "width": 720}]

    event = decode(as_bytes(payload))

    assert isinstance(event, CoverComplete)
    assert event.asset_id == "a1"
    assert event.cover_info.cover_urls[0].url == "u"


def test_unknown_event_type_decodes_to_other_event_with_nested_asset_and_status() -> None:
    payload = {
        "event_type": "transcodeComplete",
        "transcode_info": {"asset_id": "x9", "status": "succeed", "output": []},
    }

    event = decode(as_bytes(payload))

    assert isinstance(event, OtherEvent)
    assert (event.event_type, event.asset_id, event.status) == (
        "transcodeComplete",
        "x9",
        "SUCCEED",
    )


def test_event_type_nobody_documents_still_decodes_to_other_event() -> None:
    event = decode(as_bytes({"event_type": "fooComplete"}))

    assert isinstance(event, OtherEvent)
    assert (event.event_type, event.asset_id, event.status) == ("fooComplete", None, None)


def test_unknown_cover_type_decodes_as_cover_complete() -> None:
    event = decode(cover_event("a1", cover_type="LAST_FRAME_COVER"))

    assert isinstance(event, CoverComplete)
    assert event.cover_type == "LAST_FRAME_COVER"


# -- SMN envelopes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "inner", [cover_event("a1"), cover_event("a2", status="SUCCEED"), thumbnail_event("t1")]
)
def test_smn_notification_decodes_to_the_same_event_as_bare_json(inner: bytes) -> None:
    assert decode(smn(inner)) == decode(inner)


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_smn_confirmation_is_ignored_with_a_reason(kind: str) -> None:
    with pytest.raises(IgnoredRecord) as info:
        decode(smn(b"You are invited to subscribe to topic vod-events.", type=kind))

    assert kind in info.value.reason


def test_smn_notification_without_message_is_invalid() -> None:
    envelope = json.loads(smn(b""))
    del envelope["message"]

    assert invalid_reason(as_bytes(envelope)).startswith("message:")


# -- invalid records ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"", None])
def test_empty_value_is_invalid(value: bytes | None) -> None:
    assert invalid_reason(value) == "empty record value"


@pytest.mark.parametrize(
    "value",
    [
        b"not json at all",
        b"\x00\xff\xfe\x80binary",
        b'{"event_type": "coverComplete", "cover_info": {"asset_id": "a1"',
    ],
    ids=["text", "binary", "truncated"],
)
def test_non_json_is_invalid_with_a_json_reason(value: bytes) -> None:
    assert invalid_reason(value).startswith("value: not valid JSON")


@pytest.mark.parametrize("value", [b"[1, 2]", b'"coverComplete"', b"42", b"null"])
def test_json_that_is_not_an_object_is_invalid(value: bytes) -> None:
    assert invalid_reason(value) == "value: not a JSON object"


def test_wrong_type_reason_starts_with_the_dotted_path() -> None:
    payload = json.loads(cover_event("a1"))
    payload["cover_info"]["asset_id"] = 5

    assert invalid_reason(as_bytes(payload)).startswith("cover_info.asset_id:")


def test_wrong_type_in_a_list_item_names_its_index() -> None:
    payload = json.loads(cover_event("a1", status="SUCCEED"))
    payload["cover_info"]["cover_urls"] = [{"offset": 0, "url": 7}]

    assert invalid_reason(as_bytes(payload)).startswith("cover_info.cover_urls.0.url:")


@pytest.mark.parametrize(
    ("drop", "path"),
    [("status", "cover_info.status"), ("asset_id", "cover_info.asset_id")],
)
def test_missing_field_reason_names_it(drop: str, path: str) -> None:
    payload = json.loads(cover_event("a1"))
    del payload["cover_info"][drop]

    assert invalid_reason(as_bytes(payload)) == f"{path}: Field required"


def test_missing_info_section_reason_names_it() -> None:
    assert invalid_reason(b'{"event_type": "coverComplete"}') == "cover_info: Field required"


def test_empty_asset_id_is_invalid() -> None:
    payload = json.loads(cover_event("a1"))
    payload["cover_info"]["asset_id"] = ""

    assert invalid_reason(as_bytes(payload)).startswith("cover_info.asset_id:")


def test_bad_field_inside_smn_message_reason_starts_with_message_dot() -> None:
    inner = json.loads(cover_event("a1"))
    inner["cover_info"]["asset_id"] = 5

    assert invalid_reason(smn(as_bytes(inner))).startswith("message.cover_info.asset_id:")


def test_non_json_smn_message_reason_names_message() -> None:
    assert invalid_reason(smn(b"{oops")).startswith("message: not valid JSON")


def test_smn_envelope_nested_in_an_smn_message_is_invalid() -> None:
    assert invalid_reason(smn(smn(cover_event("a1")))).startswith("message:")


# -- size --------------------------------------------------------------------------------


def test_one_megabyte_valid_event_decodes() -> None:
    payload = json.loads(cover_event("a1"))
    payload["cover_info"]["title"] = "t" * 1_000_000

    event = decode(as_bytes(payload))

    assert isinstance(event, CoverComplete)
    assert len(event.cover_info.title or "") == 1_000_000


@pytest.mark.parametrize(
    "value",
    [
        b"x" * 1_000_000,
        b"[" * 1_000_000,
        b'{"a":' * 200_000,
        b'{"event_type": "' + b"e" * 1_000_000,
    ],
    ids=["garbage", "deep-array", "deep-object", "unterminated-string"],
)
def test_one_megabyte_invalid_value_fails_cleanly_with_a_short_reason(value: bytes) -> None:
    with pytest.raises(RecordError) as info:
        decode(value)

    assert isinstance(info.value, InvalidRecord)
    assert 0 < len(info.value.reason) <= 300


# -- MFS envelopes -----------------------------------------------------------------------


def mfs(inner: bytes, as_object: bool = False) -> bytes:
    message: Any = json.loads(inner) if as_object else inner.decode()
    return as_bytes({"message": message})


@pytest.mark.parametrize("as_object", [False, True], ids=["string", "object"])
def test_mfs_envelope_decodes_to_the_same_event_as_bare_json(as_object: bool) -> None:
    assert decode(mfs(cover_event("a1"), as_object)) == decode(cover_event("a1"))


def test_bad_field_inside_an_mfs_message_reason_starts_with_message_dot() -> None:
    inner = json.loads(cover_event("a1"))
    del inner["cover_info"]["asset_id"]

    assert invalid_reason(mfs(as_bytes(inner))) == "message.cover_info.asset_id: Field required"


def test_an_smn_envelope_inside_an_mfs_message_is_invalid() -> None:
    assert invalid_reason(mfs(smn(cover_event("a1")))) == (
        "message: an SMN envelope nested inside an MFS envelope"
    )


# -- CloudEvents -------------------------------------------------------------------------


def cloudevent(data: Any, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/vod/cn-north-4",
        "type": "com.huaweicloud.vod.coverComplete",
        "datacontenttype": "application/json",
        "data": data,
        **attributes,
    }


def test_structured_cloudevent_decodes_to_the_event_in_its_data() -> None:
    value = as_bytes(cloudevent(json.loads(cover_event("a1"))))

    assert decode(value) == decode(cover_event("a1"))


def test_eventgrid_batch_of_one_cloudevent_decodes_to_its_event() -> None:
    value = as_bytes({"events": [cloudevent(json.loads(thumbnail_event("t1")))]})

    assert decode(value) == decode(thumbnail_event("t1"))


def test_eventgrid_batch_of_two_is_invalid_with_a_count() -> None:
    event = cloudevent(json.loads(cover_event("a1")))

    assert invalid_reason(as_bytes({"events": [event, event]})) == (
        "events: 2 CloudEvents in one record; one expected"
    )


def test_cloudevent_data_may_be_a_json_string_or_base64() -> None:
    text = cloudevent(cover_event("a1").decode())
    encoded = cloudevent(None, data_base64=base64.b64encode(cover_event("a1")).decode())
    del encoded["data"]

    assert decode(as_bytes(text)) == decode(as_bytes(encoded)) == decode(cover_event("a1"))


def test_cloudevent_may_carry_an_smn_envelope() -> None:
    assert decode(as_bytes(cloudevent(smn(cover_event("a1")).decode()))) == decode(
        cover_event("a1")
    )


def test_cloudevent_without_data_is_invalid() -> None:
    event = cloudevent(None)
    del event["data"]

    assert invalid_reason(as_bytes(event)) == "data: CloudEvent without data"


def test_cloudevent_of_another_spec_version_is_invalid() -> None:
    value = as_bytes(cloudevent(json.loads(cover_event("a1")), specversion="0.3"))

    assert invalid_reason(value) == "specversion: only CloudEvents 1.0 is read"


def test_cloudevent_missing_a_required_attribute_names_it() -> None:
    event = cloudevent(json.loads(cover_event("a1")))
    del event["source"]

    assert invalid_reason(as_bytes(event)) == "source: Field required"


def test_bad_field_in_cloudevent_data_names_the_path_through_the_batch() -> None:
    inner = json.loads(cover_event("a1"))
    inner["cover_info"]["asset_id"] = 5

    reason = invalid_reason(as_bytes({"events": [cloudevent(inner)]}))

    assert reason.startswith("events.0.data.cover_info.asset_id:")


BINARY_HEADERS = [
    ("ce_specversion", b"1.0"),
    ("ce_id", b"ce-1"),
    ("ce_source", b"/vod/cn-north-4"),
    ("ce_type", b"com.huaweicloud.vod.coverComplete"),
    ("content-type", b"application/json"),
]


def test_binary_mode_cloudevent_decodes_its_value_as_the_event() -> None:
    assert decode_record(cover_event("a1"), BINARY_HEADERS) == decode(cover_event("a1"))


def test_binary_mode_of_another_spec_version_is_invalid() -> None:
    headers = [("ce_specversion", b"0.3"), *BINARY_HEADERS[1:]]

    with pytest.raises(InvalidRecord) as info:
        decode_record(cover_event("a1"), headers)

    assert info.value.reason.startswith("header ce_specversion:")


def test_binary_mode_with_data_that_is_not_json_is_invalid() -> None:
    headers = [*BINARY_HEADERS[:-1], ("content-type", b"application/xml")]

    with pytest.raises(InvalidRecord) as info:
        decode_record(b"<coverComplete/>", headers)

    assert info.value.reason == "header content-type: application/xml is not JSON data"


def test_structured_content_type_without_a_cloudevent_is_invalid() -> None:
    headers = [("content-type", b"application/cloudevents+json; charset=utf-8")]

    with pytest.raises(InvalidRecord) as info:
        decode_record(cover_event("a1"), headers)

    assert info.value.reason.startswith("specversion:")


def test_structured_content_type_with_a_cloudevent_decodes() -> None:
    headers = [("content-type", b"application/cloudevents+json")]
    value = as_bytes(cloudevent(json.loads(cover_event("a1"))))

    assert decode_record(value, headers) == decode(cover_event("a1"))


def test_headers_unrelated_to_cloudevents_change_nothing() -> None:
    headers = [("ingest-transport", b"smn"), ("traceparent", b"00-abc")]

    assert decode_record(smn(cover_event("a1")), headers) == decode(cover_event("a1"))
