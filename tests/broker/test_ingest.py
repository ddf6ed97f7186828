"""``cover-consumer ingest`` as a real process against the broker, over real HTTP: signed
notifications reach the topic once, forged or malformed ones never, and nothing is
answered 200 that the broker did not acknowledge."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from consumer.devtools.broker import create_topic, fetch_all, free_port
from consumer.devtools.harness import DaemonProcess
from consumer.devtools.simulator.notify import SmnSigner, mfs_callback
from tests.ingest_support import (
    REAL_TOPIC,
    get,
    post,
    real_message,
    sign_text,
    start_ingest,
    wait_ready,
)
from tests.support import cover_event, header_map

MFS_KEY = "mfs-Key-7f3a9c1e0b"
SIM_TOPIC = "urn:smn:cn-north-4:sim-project:vod-events"


@dataclass
class Ingest:
    process: DaemonProcess
    port: int
    topic: str
    bootstrap: str
    signer: SmnSigner

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def smn(self, envelope: dict[str, str]) -> tuple[int, dict[str, Any]]:
        headers = {**SmnSigner.headers(envelope), "X-SMN-MESSAGE-TYPE": envelope.get("type", "")}
        return post(self.url("/smn"), json.dumps(envelope).encode(), headers)

    def records(self) -> list[Any]:
        return asyncio.run(fetch_all(self.bootstrap, self.topic))

    def records_with(self, message_id: str) -> list[Any]:
        return [r for r in self.records() if header_map(r)["ingest-message-id"] == message_id]


def ingest_config(
    bootstrap: str, topic: str, port: int, cert: Path, **ingest: Any
) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
        "log": {"format": "json"},
        "ingest": {
            "port": port,
            "smn": {
                "certificates": [str(cert)],
                "topic_urns": [SIM_TOPIC, REAL_TOPIC],
                "confirm_hosts": ["127.0.0.1"],
            },
            **ingest,
        },
    }


@pytest.fixture(scope="module")
def ingest(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    tmp = tmp_path_factory.mktemp("ingest")
    topic = f"t-ingest-{uuid.uuid4().hex[:8]}"
    asyncio.run(create_topic(bootstrap, topic, 3))
    signer = SmnSigner(topic_urn=SIM_TOPIC)
    port = free_port()
    config = ingest_config(bootstrap, topic, port, signer.write_certificate(tmp / "sim.pem"))
    process = start_ingest(tmp, config, port, {"COVER_CONSUMER__INGEST__MFS__KEY": MFS_KEY})
    DaemonProcess.started.remove(process)  # it outlives each test: the module stops it
    try:
        wait_ready(port)
        yield Ingest(process, port, topic, bootstrap, signer)
    finally:
        process.kill()


def vod_event(asset: str, status: str = "FAILED") -> str:
    return cover_event(asset, status).decode()


# -- the real signed message ---------------------------------------------------------------


def test_the_real_signed_message_is_on_the_topic_as_received_with_its_headers(
    ingest: Ingest,
) -> None:
    message = real_message()
    body = json.dumps(message).encode()

    status, answer = post(ingest.url("/smn"), body, {"X-SMN-MESSAGE-TYPE": "Notification"})

    assert (status, answer) == (200, {"result": "forwarded"})
    [record] = ingest.records_with(message["message_id"])
    assert record.value == body
    assert record.key is None  # its message is not a VOD event: no asset to key by
    headers = header_map(record)
    assert headers["ingest-transport"] == "smn"
    assert headers["ingest-received-at"].endswith("Z")


def tampered(field: str) -> dict[str, str]:
    message = real_message()
    if field == "subject dropped":
        del message["subject"]
    elif field == "signature_version":
        message["signature_version"] = "v2"
    else:
        value = message[field]
        message[field] = value[:-1] + chr(ord(value[-1]) ^ 1)
    return message


@pytest.mark.parametrize(
    "field",
    [
        *("message", "message_id", "subject", "timestamp", "topic_urn", "type", "signature"),
        *("subject dropped", "signature_version"),
    ],
)
def test_a_tampered_real_message_is_refused_with_4xx_and_nothing_produced(
    ingest: Ingest, field: str
) -> None:
    before = len(ingest.records())
    message = tampered(field)

    status, answer = post(ingest.url("/smn"), json.dumps(message).encode())

    assert 400 <= status < 500, answer
    assert answer["error"] in ("signature", "type", "topic", "malformed")
    assert len(ingest.records()) == before


def test_a_message_signed_without_the_final_newline_is_refused(ingest: Ingest) -> None:
    envelope = ingest.signer.envelope(vod_event("nl-1"))
    text = "".join(
        f"{k}\n{envelope[k]}\n"
        for k in ("message", "message_id", "subject", "timestamp", "topic_urn", "type")
    )
    envelope["signature"] = sign_text(ingest.signer, text[:-1])

    status, answer = ingest.smn(envelope)

    assert (status, answer["error"]) == (403, "signature")
    assert ingest.records_with(envelope["message_id"]) == []


# -- forwarding ----------------------------------------------------------------------------


def test_a_notification_is_keyed_by_its_asset(ingest: Ingest) -> None:
    envelope = ingest.signer.envelope(vod_event("asset-k1"))

    assert ingest.smn(envelope)[0] == 200

    [record] = ingest.records_with(envelope["message_id"])
    assert record.key == b"asset-k1"


def test_a_repeated_delivery_is_answered_200_and_produced_once(ingest: Ingest) -> None:
    envelope = ingest.signer.envelope(vod_event("asset-d1"))

    answers = [ingest.smn(envelope) for _ in range(3)]

    assert answers == [
        (200, {"result": "forwarded"}),
        (200, {"result": "duplicate"}),
        (200, {"result": "duplicate"}),
    ]
    assert len(ingest.records_with(envelope["message_id"])) == 1
    assert ingest.process.events("duplicate_suppressed")


def test_a_verified_notification_holding_no_vod_event_is_still_forwarded(ingest: Ingest) -> None:
    envelope = ingest.signer.envelope("not JSON at all: the consumer decides")

    assert ingest.smn(envelope) == (200, {"result": "forwarded"})
    assert len(ingest.records_with(envelope["message_id"])) == 1


def test_a_signed_mfs_callback_is_produced_once_keyed_by_its_asset(ingest: Ingest) -> None:
    body, headers = mfs_callback(json.loads(vod_event("asset-m1")), MFS_KEY.encode())

    first = post(ingest.url("/mfs"), body, headers)
    again = post(ingest.url("/mfs"), body, headers)

    assert (first[0], again[0], again[1]) == (200, 200, {"result": "duplicate"})
    records = [r for r in ingest.records() if r.value == body]
    assert [(r.key, header_map(r)["ingest-transport"]) for r in records] == [(b"asset-m1", "mfs")]


def test_an_mfs_callback_with_a_wrong_signature_is_refused_and_not_produced(
    ingest: Ingest,
) -> None:
    body, headers = mfs_callback(json.loads(vod_event("asset-m2")), b"wrong key")

    status, answer = post(ingest.url("/mfs"), body, headers)

    assert (status, answer["error"]) == (403, "signature")
    assert [r for r in ingest.records() if r.value == body] == []


# -- subscriptions -------------------------------------------------------------------------


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A local 'console' answering subscription GETs on 127.0.0.1: (base URL, paths asked)."""
    import http.server
    import threading

    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()


def test_a_confirmation_is_confirmed_by_a_get_on_an_allowed_host(
    ingest: Ingest, console: tuple[str, list[str]]
) -> None:
    base, asked = console
    url = f"{base}/smn/subscribe?token=abc&subscription_urn=x"
    envelope = ingest.signer.envelope("invited", kind="SubscriptionConfirmation", subscribe_url=url)

    status, answer = ingest.smn(envelope)

    assert (status, answer) == (200, {"result": "confirmed"})
    assert asked == ["/smn/subscribe?token=abc&subscription_urn=x"]
    assert ingest.records_with(envelope["message_id"]) == []  # confirmations stay here


def test_a_confirmation_on_another_host_is_refused_and_not_fetched(
    ingest: Ingest, console: tuple[str, list[str]]
) -> None:
    base, asked = console
    url = base.replace("127.0.0.1", "localhost") + "/smn/subscribe?token=abc"
    envelope = ingest.signer.envelope("invited", kind="SubscriptionConfirmation", subscribe_url=url)

    status, answer = ingest.smn(envelope)

    assert (status, answer["error"]) == (403, "confirm_host")
    assert asked == []


# -- hostile requests ----------------------------------------------------------------------

HOSTILE: dict[str, tuple[str, bytes, dict[str, str], int]] = {
    "oversized": ("/smn", b'{"a": "' + b"x" * (1 << 20) + b'"}', {}, 413),
    "not JSON": ("/smn", b"\x00\xffnot json", {}, 400),
    "deep JSON": ("/mfs", b"[" * 100_000 + b"]" * 100_000, {}, 400),
    "deep JSON, small": ("/mfs", b'{"message":' * 60 + b"1" + b"}" * 60, {}, 400),
    "wrong content type": ("/smn", b"<xml/>", {"Content-Type": "application/xml"}, 415),
    "unknown type": ("/smn", b'{"type": "Postcard", "message": "hi"}', {}, 400),
    "JSON array": ("/smn", b"[1, 2, 3]", {}, 400),
    "no MFS auth": ("/mfs", b'{"message": "{}"}', {}, 401),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_request_gets_a_clear_4xx_and_the_ingest_lives_on(
    ingest: Ingest, case: str
) -> None:
    path, body, headers, expected = HOSTILE[case]

    status, answer = post(ingest.url(path), body, headers)

    assert status == expected
    assert answer.get("error")
    assert answer.get("detail")
    assert get(ingest.url("/livez"))[0] == 200


def test_no_line_of_the_ingest_holds_the_mfs_key_or_an_unsubscribe_url(ingest: Ingest) -> None:
    body, headers = mfs_callback({"message": "x"}, b"guess")
    post(ingest.url("/mfs"), body, headers)
    envelope = ingest.signer.envelope(vod_event("asset-u1"))
    ingest.smn(envelope)

    output = ingest.process.out.read_text(encoding="utf-8")
    assert MFS_KEY not in output
    assert "unsubscribe" not in output
    assert ingest.process.events("notification_rejected")


def test_metrics_count_received_forwarded_rejected_and_duplicates(ingest: Ingest) -> None:
    envelope = ingest.signer.envelope(vod_event("asset-x1"))
    ingest.smn(envelope)
    ingest.smn(envelope)

    status, text = get(ingest.url("/metrics"))

    assert status == 200
    for name in ("received", "forwarded", "rejected", "duplicates"):
        assert f"cover_consumer_ingest_{name}_total" in text
    assert "cover_consumer_ingest_produce_duration_seconds_bucket" in text


# -- under load ----------------------------------------------------------------------------


def test_a_thousand_notifications_with_duplicates_and_forgeries_from_20_senders(
    ingest: Ingest,
) -> None:
    signer = ingest.signer
    genuine = [signer.envelope(vod_event(f"load-{i % 97}")) for i in range(855)]
    forged = []
    for i in range(50):
        envelope = signer.envelope(vod_event(f"forged-{i}"))
        envelope["message"] = vod_event(f"forged-{i}", "SUCCEED")  # after signing
        forged.append(envelope)
    deliveries = genuine + genuine[:95] + forged  # 1,000: 9.5% repeats, 5% forged
    order = sorted(range(len(deliveries)), key=lambda i: hash((i * 7919) % 1009))

    async def send_all() -> list[tuple[str, int]]:
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        for index in order:
            queue.put_nowait(deliveries[index])
        answers: list[tuple[str, int]] = []

        async def sender(http: aiohttp.ClientSession) -> None:
            while not queue.empty():
                envelope = queue.get_nowait()
                body = json.dumps(envelope).encode()
                headers = SmnSigner.headers(envelope)
                async with http.post(ingest.url("/smn"), data=body, headers=headers) as answer:
                    answers.append((envelope["message_id"], answer.status))

        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(sender(http) for _ in range(20)))
        return answers

    answers = asyncio.run(send_all())

    by_id = Counter(header_map(r)["ingest-message-id"] for r in ingest.records())
    genuine_ids = {e["message_id"] for e in genuine}
    forged_ids = {e["message_id"] for e in forged}
    assert len(answers) == 1000
    assert {status for mid, status in answers if mid in genuine_ids} == {200}
    assert {status for mid, status in answers if mid in forged_ids} == {403}
    assert {mid: by_id[mid] for mid in genuine_ids if by_id[mid] != 1} == {}
    assert [mid for mid in forged_ids if by_id[mid]] == []
