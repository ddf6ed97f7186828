"""consumer.vod.errors: VOD's error answers classified by code first, HTTP status second,
whatever spelling the gateway or the body uses."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.errors import TransientError
from consumer.redelivery.policy import is_transient
from consumer.vod.errors import (
    VodError,
    VodPermanentError,
    VodRetryLater,
    VodSystemicError,
    VodThrottled,
    VodTransientError,
    classify,
)


def answer(code: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": "..."}


def both_spellings(*cases: tuple[int, str]) -> list[tuple[int, str]]:
    """Each gateway code as ``APIG.xxxx`` and as ``APIGW.xxxx``."""
    return [
        (status, f"{prefix}.{suffix}") for status, suffix in cases for prefix in ("APIG", "APIGW")
    ]


@pytest.mark.parametrize(
    "code",
    ["VOD.10062", "VOD.10053", "VOD.10081", "VST.10001", "VOD.10063", "VOD.10099", "VOD.10104"],
)
def test_permanent_codes(code: str) -> None:
    error = classify(400, answer(code), "req-1")

    assert type(error) is VodPermanentError
    assert not is_transient(error)


@pytest.mark.parametrize("code", ["VOD.10060", "VOD.10061", "VOD.10083", "VOD.10080"])
def test_asset_state_codes_retry_later(code: str) -> None:
    error = classify(400, answer(code), "req-1")

    assert type(error) is VodRetryLater
    assert is_transient(error)


@pytest.mark.parametrize("code", ["VOD.10051", "VOD.10052", "VST.10002"])
def test_internal_error_codes_are_transient(code: str) -> None:
    # The code decides even when the status alone would say otherwise.
    error = classify(400, answer(code), "req-1")

    assert type(error) is VodTransientError
    assert isinstance(error, TransientError)


@pytest.mark.parametrize(("status", "code"), [(403, "VOD.10127"), *both_spellings((429, "0308"))])
def test_throttling_codes_slow_down_for_2_to_5_seconds(status: int, code: str) -> None:
    error = classify(status, answer(code), "req-1")

    assert isinstance(error, VodThrottled)
    assert is_transient(error)
    assert 2.0 <= error.retry_after <= 5.0


@pytest.mark.parametrize(
    ("status", "code"),
    [
        *both_spellings(
            (404, "0101"),  # no such API: wrong endpoint
            (401, "0301"),  # authentication
            (403, "0302"),  # IAM user not authorized
            (401, "0303"),  # app authentication, clock skew
            (403, "0304"),
            (401, "0305"),
            (403, "0306"),
            (401, "0307"),  # token to be renewed
            (403, "0310"),  # project unavailable
            (403, "0401"),  # client IP
            (403, "0402"),
            (403, "0404"),  # ACL
        ),
        (403, "VOD.10054"),  # authentication
        (403, "VST.10004"),
        (403, "VOD.10055"),  # account
        (403, "VOD.10056"),
        (403, "VOD.10057"),
        (403, "VOD.10120"),
        (403, "VOD.10132"),
        (403, "VOD.10074"),  # permission
        (403, "VOD.10111"),
        (403, "VOD.10133"),
    ],
)
def test_authentication_account_and_permission_codes_are_systemic(status: int, code: str) -> None:
    error = classify(status, answer(code), "req-1")

    assert type(error) is VodSystemicError
    assert not is_transient(error)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, VodTransientError),
        (502, VodTransientError),
        (503, VodTransientError),
        (408, VodTransientError),
        (429, VodThrottled),
        (401, VodSystemicError),
        (400, VodPermanentError),
        (404, VodPermanentError),
    ],
)
@pytest.mark.parametrize(
    "body",
    [None, {}, answer("VOD.99999"), answer("APIG.0999"), answer("APIGW.0999")],
)
def test_unknown_or_missing_codes_fall_back_to_the_status(
    status: int, expected: type[VodError], body: dict[str, str] | None
) -> None:
    assert type(classify(status, body, None)) is expected


@pytest.mark.parametrize(
    "body",
    [
        None,  # an HTML page or nothing: a proxy or the gateway refused, not VOD
        {},
        {"message": "Forbidden"},
        answer("APIG.0999"),
        answer("APIGW.0999"),
        {"error": {"code": "IAM.0001", "message": "not allowed"}},
    ],
)
def test_a_403_without_a_code_of_vods_own_is_systemic(body: dict[str, Any] | None) -> None:
    assert type(classify(403, body, None)) is VodSystemicError


@pytest.mark.parametrize("code", ["VOD.10062", "VOD.99999", "VST.99999"])
def test_a_403_with_a_code_of_vods_own_stays_permanent(code: str) -> None:
    # VOD answers 403 VOD.10062 for some unknown assets: about the record, not the caller.
    assert type(classify(403, answer(code), None)) is VodPermanentError


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"error_code": "APIG.0301", "error_msg": "m"}, "APIG.0301", "m"),
        ({"errorCode": "APIGW.0301", "errorMsg": "m"}, "APIGW.0301", "m"),
        ({"code": "APIG.0301", "message": "m"}, "APIG.0301", "m"),
        ({"error": {"code": "APIG.0301", "message": "m"}}, "APIG.0301", "m"),
        ({"error": {"error_code": "APIG.0301", "error_msg": "m"}}, "APIG.0301", "m"),
        ({"error_code": "APIG.0301", "message": "m"}, "APIG.0301", "m"),  # mixed spellings
        ({"error": {"code": 401, "message": "m", "title": "Unauthorized"}}, "401", "m"),  # IAM
        ({"error_code": "APIG.0301"}, "APIG.0301", None),
        ({"message": "m"}, None, "m"),
        ({"error_code": True, "error_msg": "m"}, None, "m"),  # not a code
        ({"a": {"b": {"c": {"d": {"code": "APIG.0301"}}}}}, None, None),  # too deep to be one
    ],
)
def test_the_code_and_message_are_read_in_every_spelling_the_sdk_reads(
    body: dict[str, Any], code: str | None, message: str | None
) -> None:
    error = classify(400, body, None)

    assert (error.error_code, error.error_msg) == (code, message)


def test_a_nested_code_decides_the_class() -> None:
    body = {"error": {"code": "APIGW.0308", "message": "busy"}}

    assert isinstance(classify(400, body, None), VodThrottled)


def test_the_error_carries_code_message_status_and_request_id() -> None:
    error = classify(400, {"error_code": "VOD.10062", "error_msg": "gone"}, "req-9")

    assert (error.error_code, error.error_msg, error.status, error.request_id) == (
        "VOD.10062",
        "gone",
        400,
        "req-9",
    )
    assert "VOD.10062" in str(error)
    assert "req-9" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        {"error_code": "APIG.0308", "error_msg": "busy", "request_id": "gw-1"},
        {"error": {"code": "APIG.0308", "message": "busy", "request_id": "gw-1"}},
        {"error": {"code": "APIG.0308", "message": "busy"}, "request_id": "gw-1"},
    ],
)
def test_the_body_request_id_is_used_when_the_header_had_none(body: dict[str, Any]) -> None:
    assert classify(429, body, None).request_id == "gw-1"


def test_the_header_request_id_wins_over_the_bodys() -> None:
    body = {"error_code": "APIG.0308", "error_msg": "busy", "request_id": "gw-1"}

    assert classify(429, body, "hdr-1").request_id == "hdr-1"
