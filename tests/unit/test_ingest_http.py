"""The ingest's HTTP answers (consumer.ingress.app) over real HTTP, no broker: every
refusal is a clear 4xx (or a 503 to retry) with one log line, nothing crashes, no secret
and no unsubscribe URL is logged. Forwarding itself is tested against a broker."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.typing import EventDict

from consumer.config import IngestSettings
from consumer.devtools.simulator.notify import SmnSigner, mfs_callback
from consumer.ingress.app import Ingress, make_app
from consumer.ingress.certs import TrustStore, load_pinned
from consumer.ingress.confirm import Confirmer
from consumer.ingress.dedup import Seen
from consumer.ingress.forward import Forwarder
from consumer.testing import ManualClock
from tests.ingest_support import real_message

MFS_KEY = "mfs-secret-Key-4711"
TOPIC = "urn:smn:cn-north-4:sim:vod-events"


@dataclass
class Client:
    http: aiohttp.ClientSession
    base: str
    signer: SmnSigner
    logs: list[EventDict]
    ingress: Ingress
    console: str  # base URL of a local "console" that answers subscription GETs
    fetched: list[str] = field(default_factory=list)  # what it was asked for

    async def post(
        self, path: str, body: bytes | str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = body.encode() if isinstance(body, str) else body
        async with self.http.post(self.base + path, data=data, headers=headers or {}) as answer:
            return answer.status, await answer.json(content_type=None)

    async def smn(self, envelope: dict[str, str], **headers: str) -> tuple[int, dict[str, Any]]:
        sent = {"X-SMN-MESSAGE-TYPE": envelope.get("type", ""), **headers}
        return await self.post("/smn", json.dumps(envelope), sent)

    def lines(self, event: str) -> list[EventDict]:
        return [line for line in self.logs if line["event"] == event]


@pytest.fixture
async def client(tmp_path: Path, logs: list[EventDict]) -> AsyncIterator[Client]:
    signer = SmnSigner(topic_urn=TOPIC)
    settings = IngestSettings.model_validate(
        {
            "max_body_bytes": 4096,
            "rate_per_source": 50,
            "burst_per_source": 50,
            "smn": {
                "certificates": [str(signer.write_certificate(tmp_path / "sim.pem"))],
                "topic_urns": [TOPIC],
                "confirm_hosts": ["127.0.0.1"],
            },
            "mfs": {"key": MFS_KEY},
        }
    )
    log = structlog.get_logger()
    forwarder = Forwarder({"bootstrap_servers": "127.0.0.1:1"}, "t", Seen(60, 100), log, 10)
    fetched: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        fetched.append(str(request.rel_url))
        return web.Response(text="confirmed")

    console_app = web.Application()
    console_app.router.add_get("/{tail:.*}", answer)
    async with (
        TestServer(console_app, host="127.0.0.1") as console_server,
        aiohttp.ClientSession() as http,
    ):
        pinned = load_pinned(settings.smn.certificates)
        # Time stands still (rates are exact); the wall clock reads now (MFS timestamps).
        clock = ManualClock()
        clock.set_wall(time.time())
        confirmer = Confirmer(http, ["127.0.0.1"])
        ingress = Ingress(settings, forwarder, TrustStore(pinned), confirmer, log, clock)
        async with TestServer(make_app(ingress, 4096), host="127.0.0.1") as server:
            base = str(server.make_url("")).rstrip("/")
            console = str(console_server.make_url("")).rstrip("/")
            yield Client(http, base, signer, logs, ingress, console, fetched)


# -- refusals of the body ----------------------------------------------------------------


async def test_an_oversized_body_is_refused_with_413(client: Client) -> None:
    status, answer = await client.post("/smn", b"{" + b" " * 5000 + b"}")

    assert (status, answer["error"]) == (413, "too_large")


async def test_an_oversized_chunked_body_is_refused_with_413(client: Client) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    async with client.http.post(client.base + "/mfs", data=chunks()) as answer:
        assert answer.status == 413


async def test_a_body_that_is_not_json_is_refused_with_400(client: Client) -> None:
    status, answer = await client.post("/smn", "<xml>no</xml>")

    assert (status, answer["error"]) == (400, "malformed")
    assert answer["detail"].startswith("body is not JSON")


@pytest.mark.parametrize("depth", [40, 2000])
async def test_deeply_nested_json_is_refused_with_400(client: Client, depth: int) -> None:
    status, answer = await client.post("/mfs", "[" * depth + "]" * depth)

    assert (status, answer["error"]) == (400, "malformed")


@pytest.mark.parametrize(
    "kind", ["application/xml", "multipart/form-data; boundary=x", "text/html"]
)
async def test_a_content_type_that_is_not_json_is_refused_with_415(
    client: Client, kind: str
) -> None:
    status, answer = await client.post("/smn", json.dumps(real_message()), {"Content-Type": kind})

    assert (status, answer["error"]) == (415, "content_type")


@pytest.mark.parametrize("kind", ["text/plain; charset=UTF-8", "application/json"])
async def test_smn_content_types_pass_to_the_signature_check(client: Client, kind: str) -> None:
    message = real_message()
    message["message_id"] = "changed"  # signature no longer matches: 403, not 415

    status, _ = await client.post("/smn", json.dumps(message), {"Content-Type": kind})

    assert status == 403


async def test_get_on_a_notification_path_is_405(client: Client) -> None:
    async with client.http.get(client.base + "/smn") as answer:
        assert answer.status == 405


# -- SMN ---------------------------------------------------------------------------------


async def test_an_unknown_message_type_is_refused_with_400(client: Client) -> None:
    envelope = client.signer.envelope("{}")
    envelope["type"] = "Postcard"

    status, answer = await client.smn(envelope)

    assert (status, answer["error"]) == (400, "type")


async def test_a_type_the_header_contradicts_is_refused_with_400(client: Client) -> None:
    status, answer = await client.smn(
        client.signer.envelope("{}"), **{"X-SMN-MESSAGE-TYPE": "UnsubscribeConfirmation"}
    )

    assert (status, answer["error"]) == (400, "type")


async def test_a_forged_signature_is_refused_with_403_and_one_line(client: Client) -> None:
    envelope = client.signer.envelope('{"event_type": "coverComplete"}')
    envelope["message"] = '{"event_type": "thumbnailComplete"}'

    status, answer = await client.smn(envelope)

    assert (status, answer["error"]) == (403, "signature")
    [line] = client.lines("notification_rejected")
    assert (line["status"], line["reason"], line["message_id"]) == (
        403,
        "signature",
        envelope["message_id"],
    )


async def test_an_event_beside_a_signed_message_is_refused_with_403(client: Client) -> None:
    # The signature covers the message: an event added beside it would be what the
    # consumer decodes, for an asset of the sender's choosing.
    envelope: dict[str, Any] = client.signer.envelope('{"event_type": "coverComplete"}')
    envelope["event_type"] = "thumbnailComplete"

    status, answer = await client.smn(envelope)

    assert (status, answer["error"]) == (403, "unsigned_event")
    [line] = client.lines("notification_rejected")
    assert (line["status"], line["reason"]) == (403, "unsigned_event")


async def test_a_signed_message_of_another_topic_is_refused_with_403(client: Client) -> None:
    client.signer.topic_urn = "urn:smn:cn-north-4:sim:someone-elses"

    status, answer = await client.smn(client.signer.envelope("{}"))

    assert (status, answer["error"]) == (403, "topic")


async def test_a_verified_notification_without_a_broker_is_503_to_retry(client: Client) -> None:
    status, answer = await client.smn(client.signer.envelope('{"event_type": "x"}'))

    assert (status, answer["error"]) == (503, "unavailable")


async def test_an_unsubscribe_confirmation_is_acknowledged_and_logged_without_its_url(
    client: Client,
) -> None:
    envelope = client.signer.envelope(
        "unsubscribed",
        kind="UnsubscribeConfirmation",
        subscribe_url="https://console.huaweicloud.com/smn/subscribe?token=resubscribe",
    )

    status, answer = await client.smn(envelope)

    assert (status, answer["result"]) == (200, "acknowledged")
    [line] = client.lines("smn_unsubscribed")
    assert line["log_level"] == "error"
    assert "token=" not in repr(client.logs)


async def test_a_notification_logs_no_unsubscribe_url(client: Client) -> None:
    envelope = client.signer.envelope('{"event_type": "x"}')

    await client.smn(envelope)

    assert envelope["unsubscribe_url"] not in repr(client.logs)
    assert "unsubscribe" not in repr(client.logs)


@pytest.mark.parametrize("kind", ["HttpSubscriptionUserConfirm", "HttpSubscriptionUserUnsubscribe"])
async def test_types_without_documented_fields_are_acknowledged_not_forwarded(
    client: Client, kind: str
) -> None:
    status, answer = await client.smn({"type": kind, "message_id": "m-1"})

    assert (status, answer["result"]) == (200, "acknowledged")
    assert client.lines("notification_forwarded") == []


# -- subscription confirmation -----------------------------------------------------------


def confirmation(client: Client, url: str) -> dict[str, str]:
    return client.signer.envelope("invited", kind="SubscriptionConfirmation", subscribe_url=url)


async def test_a_confirmation_on_an_allowed_host_is_confirmed_by_one_get(client: Client) -> None:
    url = f"{client.console}/smn/subscribe?token=tok-1&region=cn-north-4"

    status, answer = await client.smn(confirmation(client, url))

    assert (status, answer["result"]) == (200, "confirmed")
    assert client.fetched == ["/smn/subscribe?token=tok-1&region=cn-north-4"]


async def test_a_confirmation_on_another_host_is_refused_and_not_fetched(client: Client) -> None:
    url = client.console.replace("127.0.0.1", "localhost") + "/smn/subscribe?token=tok-2"

    status, answer = await client.smn(confirmation(client, url))

    assert (status, answer["error"]) == (403, "confirm_host")
    assert client.fetched == []


async def test_a_repeated_confirmation_is_not_fetched_again(client: Client) -> None:
    envelope = confirmation(client, f"{client.console}/smn/subscribe?token=tok-3")
    await client.smn(envelope)

    status, answer = await client.smn(envelope)

    assert (status, answer["result"]) == (200, "duplicate")
    assert len(client.fetched) == 1


# -- MFS ---------------------------------------------------------------------------------


async def test_an_mfs_callback_signed_with_another_key_is_refused_with_403(client: Client) -> None:
    body, headers = mfs_callback({"event_type": "coverComplete"}, b"not-the-key")

    status, answer = await client.post("/mfs", body, headers)

    assert (status, answer["error"]) == (403, "signature")


async def test_an_event_beside_a_signed_mfs_message_is_refused_with_403(client: Client) -> None:
    body, headers = mfs_callback({"event_type": "coverComplete"}, MFS_KEY.encode())
    forged = json.loads(body) | {"event_type": "thumbnailComplete"}

    status, answer = await client.post("/mfs", json.dumps(forged).encode(), headers)

    assert (status, answer["error"]) == (403, "unsigned_event")


async def test_an_mfs_callback_without_authentication_is_refused_with_401(client: Client) -> None:
    body, _ = mfs_callback({"event_type": "coverComplete"}, None)

    status, answer = await client.post("/mfs", body, {"Content-Type": "application/json"})

    assert (status, answer["error"]) == (401, "auth")


async def test_a_json_body_that_is_no_mfs_callback_is_refused_with_400(client: Client) -> None:
    status, answer = await client.post("/mfs", '{"hello": "world"}')

    assert (status, answer["error"]) == (400, "malformed")


async def test_no_line_holds_the_mfs_key(client: Client) -> None:
    body, headers = mfs_callback({"event_type": "coverComplete"}, MFS_KEY.encode())
    headers["auth_sign"] = "0" * 64
    await client.post("/mfs", body, headers)

    assert MFS_KEY not in repr(client.logs)
    assert client.lines("notification_rejected")


# -- limits and probes -------------------------------------------------------------------


async def test_a_source_over_its_rate_gets_503_to_retry(client: Client) -> None:
    statuses = [(await client.post("/mfs", "{}"))[0] for _ in range(51)]

    assert statuses[:50] == [400] * 50
    assert statuses[50] == 503
    assert client.lines("notification_rejected")[-1]["reason"] == "rate_limited"


async def test_not_ready_until_the_broker_is_connected_but_alive(client: Client) -> None:
    async with client.http.get(client.base + "/readyz") as ready:
        assert (ready.status, (await ready.text()).strip()) == (
            503,
            "not connected to the broker yet",
        )
    async with client.http.get(client.base + "/livez") as live:
        assert live.status == 200


async def test_shutting_down_answers_503_and_not_ready(client: Client) -> None:
    client.ingress.stopping = True

    status, answer = await client.post("/mfs", "{}")

    assert (status, answer["error"]) == (503, "shutting_down")
    async with client.http.get(client.base + "/readyz") as ready:
        assert ready.status == 503


async def test_metrics_count_rejections_by_reason(client: Client) -> None:
    await client.post("/smn", "not json")

    async with client.http.get(client.base + "/metrics") as answer:
        text = await answer.text()
    assert 'cover_consumer_ingest_rejected_total{reason="malformed",transport="smn"}' in text


class ExplodingTrust(TrustStore):
    """A trust store with a bug in it."""

    async def verify(self, message: object) -> bool:
        raise RuntimeError("a bug")


async def test_an_unexpected_error_is_500_to_retry_with_its_traceback_logged(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client.ingress, "_trust", ExplodingTrust([]))

    status, answer = await client.smn(client.signer.envelope("{}"))

    assert (status, answer["error"]) == (500, "internal")
    [line] = client.lines("ingest_error")
    assert line["exc_info"] is True
    async with client.http.get(client.base + "/livez") as live:
        assert live.status == 200


async def test_a_body_sent_too_slowly_frees_its_place_within_the_answer_timeout(
    client: Client,
) -> None:
    # A slow sender held one of ingest.max_concurrent places for as long as it liked: a few
    # hundred of them (no signature needed) and every real notification was a 503.
    ingress = client.ingress
    ingress._settings = ingress._settings.model_copy(update={"answer_timeout": 0.3})
    host, port = client.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /mfs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()

    assert status_line.startswith(b"HTTP/1.1 503")
    assert ingress._gate.held == 0
    [line] = client.lines("notification_rejected")
    assert (line["status"], line["reason"]) == (503, "incomplete")


async def test_a_sender_gone_before_its_body_arrived_is_no_internal_error(
    client: Client,
) -> None:
    # A dropped connection was logged as a bug of ours (ingest_error, a traceback, a 500
    # counted as reason internal): the alert on failing notifications fired on it.
    host, port = client.base.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /mfs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(50):
        if client.lines("notification_rejected"):
            break
        await asyncio.sleep(0.05)

    assert client.lines("ingest_error") == []
    [line] = client.lines("notification_rejected")
    assert line["reason"] == "incomplete"
    assert client.ingress._gate.held == 0
