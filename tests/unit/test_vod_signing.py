"""consumer.vod.signing: SDK-HMAC-SHA256 as the official SDK computes it, and its check."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from consumer.vod.signing import (
    Credentials,
    Problem,
    QueryValue,
    canonical_query,
    canonical_request,
    canonical_uri,
    sign,
    verify,
)

# The official SDK's signer test vectors (VOD_API.md section 5).
HOST = "service.endpoint.myhuaweicloud.com"
VECTOR_TIME = datetime(2020, 6, 8, 2, 39, 0, tzinfo=UTC)
VECTOR_KEY = Credentials("AccessKey", SecretStr("SecretKey"))
VECTOR_HEADERS = {"TEST_UNDERSCORE": "TEST_VALUE"}


def signature_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].rpartition("Signature=")[2]


def test_get_vector_signature() -> None:
    headers = sign(
        "GET", HOST, "/resources", "size=1", VECTOR_HEADERS, b"", VECTOR_KEY, VECTOR_TIME
    )

    assert headers["X-Sdk-Date"] == "20200608T023900Z"
    assert headers["Authorization"] == (
        "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, "
        "Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
    )


def test_get_vector_canonical_request() -> None:
    headers = {"host": HOST, "x-sdk-date": "20200608T023900Z", "test_underscore": "TEST_VALUE"}
    empty = hashlib.sha256(b"").hexdigest()

    request = canonical_request(
        "GET", "/resources", "size=1", headers, ["host", "x-sdk-date"], empty
    )

    assert request == (
        "GET\n/resources/\nsize=1\nhost:service.endpoint.myhuaweicloud.com\n"
        "x-sdk-date:20200608T023900Z\n\nhost;x-sdk-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_post_vector_signature() -> None:
    body = b'{"name":"test","id":1}'

    headers = sign(
        "POST", HOST, "/resources", "size=1", VECTOR_HEADERS, body, VECTOR_KEY, VECTOR_TIME
    )

    assert signature_of(headers) == (
        "436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
    )


def test_query_vector_canonicalization() -> None:
    params: dict[str, QueryValue] = {
        "limit": 1,
        "enable": True,
        "test": "一 (&=?!#%.*)",
        "path": "/tmp/123",
        "multi": [1, 2, 3],
    }

    assert canonical_query(params) == (
        "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123"
        "&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    )


def test_canonical_uri_reencodes_segments_and_ends_with_a_slash() -> None:
    assert canonical_uri("/v1.0/p%20x/asset/details") == "/v1.0/p%20x/asset/details/"
    assert canonical_uri("/resources/") == "/resources/"


def test_a_non_json_body_is_sent_as_unsigned_payload() -> None:
    headers = sign(
        "PUT", HOST, "/upload", "", {"Content-Type": "image/jpeg"}, b"\xff", VECTOR_KEY, VECTOR_TIME
    )

    assert headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert "x-sdk-content-sha256" in headers["Authorization"]


# The verifier: a request signed by ``sign`` passes; any change to it does not.

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
KEYS = {"AK1": "right-secret"}
PATH = "/v1.0/proj/asset/process"
QUERY = canonical_query({"asset_id": "a1", "categories": ["base_info", "thumbnail_info"]})
BODY = b'{"asset_id":"a1","thumbnail":{"type":"dots","dots":[0]}}'


def signed_headers(secret: str = "right-secret", when: datetime = NOW) -> dict[str, str]:
    credentials = Credentials("AK1", SecretStr(secret))
    base = {"Content-Type": "application/json", "X-Project-Id": "proj"}
    return sign("POST", "vod.example:8443", PATH, QUERY, base, BODY, credentials, when)


def check(
    headers: dict[str, str], *, query: str = QUERY, body: bytes = BODY, now: datetime = NOW
) -> Problem | None:
    verdict = verify("POST", PATH, query, headers, body, KEYS.get, now)
    assert verdict.access_key == "AK1"
    return verdict.problem


def test_verifier_accepts_a_signed_request() -> None:
    assert check(signed_headers()) is None


def test_verifier_rejects_a_tampered_body() -> None:
    tampered = BODY.replace(b'"dots":[0]', b'"dots":[5]')

    assert check(signed_headers(), body=tampered) is Problem.BAD_SIGNATURE


def test_verifier_rejects_a_tampered_query() -> None:
    assert check(signed_headers(), query="asset_id=a2") is Problem.BAD_SIGNATURE


def test_verifier_rejects_a_wrong_secret_key() -> None:
    assert check(signed_headers(secret="wrong-secret")) is Problem.BAD_SIGNATURE


@pytest.mark.parametrize("offset", [timedelta(minutes=16), timedelta(minutes=-16)])
def test_verifier_rejects_a_date_16_minutes_off(offset: timedelta) -> None:
    headers = signed_headers(when=NOW + offset)

    assert check(headers) is Problem.CLOCK_SKEW


def test_verifier_accepts_a_date_14_minutes_off() -> None:
    assert check(signed_headers(when=NOW - timedelta(minutes=14))) is None


def test_verifier_ignores_an_unsigned_payload_marker_added_after_signing() -> None:
    headers = signed_headers() | {"X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}

    assert check(headers, body=b'{"asset_id":"other"}') is Problem.BAD_SIGNATURE


def test_verifier_reads_header_names_in_any_case() -> None:
    headers = {name.upper(): value for name, value in signed_headers().items()}

    assert check(headers) is None


def test_a_temporary_keys_security_token_is_sent_and_signed() -> None:
    credentials = Credentials("AK1", SecretStr("right-secret"), SecretStr("the-token"))

    headers = sign("GET", HOST, "/resources", "", {}, b"", credentials, VECTOR_TIME)

    assert headers["X-Security-Token"] == "the-token"
    assert "SignedHeaders=host;x-sdk-date;x-security-token," in headers["Authorization"]


def test_a_permanent_key_sends_no_security_token() -> None:
    headers = sign("GET", HOST, "/resources", "", {}, b"", VECTOR_KEY, VECTOR_TIME)

    assert "X-Security-Token" not in headers


def test_the_verdict_names_the_signed_headers() -> None:
    verdict = verify("POST", PATH, QUERY, signed_headers(), BODY, KEYS.get, NOW)

    assert verdict.signed_headers == {"content-type", "host", "x-project-id", "x-sdk-date"}


def test_an_empty_body_hashes_as_empty_even_when_marked_unsigned() -> None:
    # The official SDK's signer does so (tests/contract/test_vod_sdk.py compares the two).
    headers = sign("GET", HOST, "/r", "", {"Content-Type": "text/plain"}, b"", VECTOR_KEY, NOW)
    lowered = {name.lower(): value for name, value in headers.items()}
    names = ["content-type", "host", "x-sdk-content-sha256", "x-sdk-date"]
    request = canonical_request("GET", "/r", "", lowered, names, hashlib.sha256(b"").hexdigest())
    digest = hashlib.sha256(request.encode()).hexdigest()
    to_sign = f"SDK-HMAC-SHA256\n{headers['X-Sdk-Date']}\n{digest}"

    assert headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    assert signature_of(headers) == hmac.new(b"SecretKey", to_sign.encode(), "sha256").hexdigest()


def test_the_verifier_hashes_an_empty_body_as_the_signer_does() -> None:
    headers = sign("GET", HOST, "/r", "", {"Content-Type": "text/plain"}, b"", VECTOR_KEY, NOW)

    assert verify("GET", "/r", "", headers, b"", {"AccessKey": "SecretKey"}.get, NOW).ok
