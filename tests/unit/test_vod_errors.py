"""consumer.vod.errors: VOD's error answers classified by code first, HTTP status second."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("status", "code"), [(403, "VOD.10127"), (429, "APIG.0308"), (429, "APIGW.0308")]
)
def test_throttling_codes_slow_down_for_2_to_5_seconds(status: int, code: str) -> None:
    error = classify(status, answer(code), "req-1")

    assert isinstance(error, VodThrottled)
    assert is_transient(error)
    assert 2.0 <= error.retry_after <= 5.0


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "APIGW.0301"),  # authentication
        (403, "VOD.10054"),
        (403, "VST.10004"),
        (401, "APIGW.0303"),  # clock skew
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
        (403, VodPermanentError),
        (404, VodPermanentError),
    ],
)
@pytest.mark.parametrize("body", [None, {}, {"error_code": "VOD.99999", "error_msg": "new"}])
def test_unknown_or_missing_codes_fall_back_to_the_status(
    status: int, expected: type[VodError], body: dict[str, str] | None
) -> None:
    assert type(classify(status, body, None)) is expected


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


def test_the_body_request_id_is_used_when_the_header_had_none() -> None:
    body = {"error_code": "APIG.0308", "error_msg": "busy", "request_id": "gw-1"}

    assert classify(429, body, None).request_id == "gw-1"
