"""The ingest's pure guards: MFS's HMAC, the duplicate window, rate and concurrency
limits, the hosts a subscription may be confirmed on. Time is a ManualClock."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from consumer.devtools.simulator.notify import mfs_callback
from consumer.ingress.confirm import Confirmer, host_allowed
from consumer.ingress.dedup import Seen
from consumer.ingress.limits import Gate, RateLimiter
from consumer.ingress.mfs import check, signed_contents
from consumer.ingress.refusal import Refused
from consumer.testing import ManualClock

KEY = b"mfs-console-key"
NOW = 1_800_000_000.0
EVENT = {"event_type": "coverComplete", "cover_info": {"asset_id": "a1", "status": "FAILED"}}


def signed(stamp: str, message: str, key: bytes = KEY) -> dict[str, str]:
    sign = hmac.new(key, f"VOD_{stamp}_{message}".encode(), hashlib.sha256).hexdigest()
    return {"auth_timestamp": stamp, "auth_sign": sign}


def mfs_refusal(headers: dict[str, str], content: bytes = b"m", now: float = NOW) -> Refused:
    with pytest.raises(Refused) as info:
        check(headers, [content], KEY, 600, now)
    return info.value


# -- MFS ---------------------------------------------------------------------------------


def test_mfs_accepts_the_hmac_of_the_message_attribute() -> None:
    body, headers = mfs_callback(EVENT, KEY, now=NOW)

    check(headers, signed_contents(json.loads(body), body), KEY, 600, NOW)  # no refusal


def test_mfs_signed_content_is_the_message_string_as_received_first() -> None:
    body = b'{"message": "{\\"event_type\\": \\"x\\"}", "other": 1}'

    assert signed_contents(json.loads(body), body)[0] == b'{"event_type": "x"}'


def test_mfs_signed_content_without_a_message_is_the_whole_body() -> None:
    body = b'{"event_type": "x"}'

    assert signed_contents(json.loads(body), body) == [body]


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")], ids=["compact", "spaced"])
def test_mfs_accepts_an_object_message_signed_as_its_json(separators: tuple[str, str]) -> None:
    message = json.dumps(EVENT, separators=separators)
    body = json.dumps({"message": EVENT}).encode()

    check(signed(str(int(NOW)), message), signed_contents(json.loads(body), body), KEY, 600, NOW)


def test_mfs_refuses_a_signature_made_with_another_key() -> None:
    refused = mfs_refusal(signed(str(int(NOW)), "m", key=b"other"))

    assert (refused.status, refused.reason) == (403, "signature")


def test_mfs_refuses_a_callback_without_the_headers_with_401() -> None:
    assert (mfs_refusal({}).status, mfs_refusal({}).reason) == (401, "auth")


def test_mfs_refuses_a_timestamp_that_is_not_a_number() -> None:
    assert mfs_refusal({"auth_timestamp": "yesterday", "auth_sign": "00"}).reason == "auth"


@pytest.mark.parametrize("stamp", [str(int(NOW - 601)), str(int((NOW + 601) * 1000))])
def test_mfs_refuses_a_timestamp_outside_the_window_in_seconds_or_ms(stamp: str) -> None:
    refused = mfs_refusal(signed(stamp, "m"))

    assert (refused.status, refused.reason) == (401, "timestamp")


@pytest.mark.parametrize("stamp", [str(int(NOW - 599)), str(int((NOW + 599) * 1000))])
def test_mfs_accepts_a_timestamp_inside_the_window_in_seconds_or_ms(stamp: str) -> None:
    check(signed(stamp, "m"), [b"m"], KEY, 600, NOW)


def test_mfs_compares_the_signature_case_insensitively() -> None:
    headers = signed(str(int(NOW)), "m")
    headers["auth_sign"] = headers["auth_sign"].upper()

    check(headers, [b"m"], KEY, 600, NOW)


# -- duplicates --------------------------------------------------------------------------


def test_a_delivery_is_a_duplicate_within_the_window_and_not_after() -> None:
    clock = ManualClock()
    seen = Seen(window=60, max_entries=10, clock=clock)
    seen.add("smn:m1")

    clock.advance(59.9)
    assert "smn:m1" in seen
    clock.advance(0.2)
    assert "smn:m1" not in seen


def test_the_oldest_delivery_is_forgotten_past_max_entries() -> None:
    seen = Seen(window=60, max_entries=2, clock=ManualClock())
    for key in ("a", "b", "c"):
        seen.add(key)

    assert ("a" in seen, "b" in seen, "c" in seen) == (False, True, True)


# -- limits ------------------------------------------------------------------------------


def test_a_source_gets_its_burst_then_its_rate() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)

    assert [limiter.allow("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    clock.advance(0.1)  # one token back
    assert [limiter.allow("10.0.0.1") for _ in range(2)] == [True, False]


def test_sources_are_limited_apart() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=ManualClock())

    assert (limiter.allow("a"), limiter.allow("a"), limiter.allow("b")) == (True, False, True)


def test_the_least_recent_source_is_forgotten_past_the_table_size() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=ManualClock(), max_sources=2)
    for source in ("a", "b", "c"):
        limiter.allow(source)

    assert limiter.allow("a")  # forgotten: a full bucket again
    assert not limiter.allow("c")


def test_the_gate_holds_at_most_its_limit() -> None:
    gate = Gate(2)

    assert [gate.enter(), gate.enter(), gate.enter()] == [True, True, False]
    gate.leave()
    assert gate.enter()


# -- subscription hosts ------------------------------------------------------------------

HUAWEI = ("console.huaweicloud.com", "*-console.huaweicloud.com")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("console.huaweicloud.com", True),
        ("cn-north-4-console.huaweicloud.com", True),
        ("ap-southeast-1-console.huaweicloud.com", True),
        ("evil.example", False),
        ("console.huaweicloud.com.evil.example", False),
        ("evil.example.cn-north-4-console.huaweicloud.com", False),
        ("xconsole.huaweicloud.com", False),
        ("-console.huaweicloud.com", False),
        ("console.huaweicloud.co", False),
    ],
)
def test_subscribe_hosts_by_default_are_the_huawei_consoles_only(host: str, allowed: bool) -> None:
    assert host_allowed(host, 443, HUAWEI) is allowed


def test_a_host_pattern_with_the_default_port_allows_a_url_without_one() -> None:
    confirmer = Confirmer(None, ("console.huaweicloud.com:443",))  # type: ignore[arg-type]

    confirmer.check("https://console.huaweicloud.com/smn/subscribe?token=t")
    with pytest.raises(Refused):
        confirmer.check("http://console.huaweicloud.com/smn/subscribe?token=t")


def test_a_host_pattern_with_a_port_allows_that_port_only() -> None:
    assert host_allowed("127.0.0.1", 8000, ("127.0.0.1:8000",))
    assert not host_allowed("127.0.0.1", 8001, ("127.0.0.1:8000",))
