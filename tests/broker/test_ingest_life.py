"""The ingest's life against a broker that goes away and comes back, with TLS, on SIGTERM,
and end to end: what the ingest forwards, the daemon consumes."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import urllib.request
from pathlib import Path

import trustme

from consumer.devtools.broker import create_topic, fetch_all, free_port
from consumer.devtools.simulator.notify import SmnSigner, mfs_callback
from tests.fakes import thumbnail_event
from tests.ingest_support import get, post, start_ingest, wait_ready
from tests.support import Proxy, cover_event, daemon_config, header_map, start_daemon, wait_for

SIM_TOPIC = "urn:smn:cn-north-4:sim-project:vod-events"


def config(
    bootstrap: str, topic: str, port: int, cert: Path, **ingest: object
) -> dict[str, object]:
    return {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "request_timeout_ms": 20000},
        "log": {"format": "json"},
        "ingest": {"port": port, "smn": {"certificates": [str(cert)]}, **ingest},
    }


def push(port: int, envelope: dict[str, str]) -> tuple[int, dict[str, object]]:
    return post(
        f"http://127.0.0.1:{port}/smn", json.dumps(envelope).encode(), SmnSigner.headers(envelope)
    )


def test_broker_cut_off_503_then_back_the_retried_delivery_is_produced_once(
    behind_proxy: tuple[Proxy, str], name: str, tmp_path: Path
) -> None:
    proxy, bootstrap = behind_proxy
    proxy.up()
    asyncio.run(create_topic(bootstrap, name, 1))
    signer = SmnSigner(topic_urn=SIM_TOPIC)
    port = free_port()
    cert = signer.write_certificate(tmp_path / "sim.pem")
    ingest = start_ingest(tmp_path, config(bootstrap, name, port, cert, answer_timeout=1.0), port)
    wait_ready(port)
    before = signer.envelope(cover_event("a-before").decode())
    assert push(port, before)[0] == 200

    proxy.down()
    during = signer.envelope(cover_event("a-during").decode())
    status, answer = push(port, during)
    assert (status, answer["error"]) == (503, "timeout")
    wait_for(lambda: get(f"http://127.0.0.1:{port}/readyz")[0] == 503, 20, "not ready")
    assert push(port, during)[0] == 503  # SMN retries: still nothing acknowledged
    proxy.up()
    answers: list[int] = []

    def retried() -> bool:  # as SMN does, until a 2xx
        answers.append(push(port, during)[0])
        return answers[-1] == 200

    wait_for(retried, 60, "a 200")

    records = asyncio.run(fetch_all(bootstrap, name))
    ids = [header_map(r)["ingest-message-id"] for r in records]
    assert sorted(ids) == sorted([before["message_id"], during["message_id"]])
    assert set(answers[:-1]) <= {503}
    ingest.terminate()


def test_broker_away_at_start_alive_not_ready_503_then_forwarded(
    behind_proxy: tuple[Proxy, str], name: str, tmp_path: Path
) -> None:
    proxy, bootstrap = behind_proxy
    signer = SmnSigner(topic_urn=SIM_TOPIC)
    port = free_port()
    cert = signer.write_certificate(tmp_path / "sim.pem")
    ingest = start_ingest(tmp_path, config(bootstrap, name, port, cert, answer_timeout=1.0), port)
    ingest.wait_for(lambda: len(ingest.events("broker_unavailable")) >= 2, 30, "two tries")
    envelope = signer.envelope(cover_event("a1").decode())

    assert get(f"http://127.0.0.1:{port}/livez")[0] == 200
    assert get(f"http://127.0.0.1:{port}/readyz") == (503, "not connected to the broker yet\n")
    assert push(port, envelope)[0] == 503
    proxy.up()
    asyncio.run(create_topic(bootstrap, name, 1))
    wait_ready(port)
    assert push(port, envelope) == (200, {"result": "forwarded"})
    ingest.terminate()


def test_sigterm_exits_0_promptly_and_says_so(bootstrap: str, name: str, tmp_path: Path) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    port = free_port()
    cert = SmnSigner().write_certificate(tmp_path / "sim.pem")
    ingest = start_ingest(tmp_path, config(bootstrap, name, port, cert), port)
    wait_ready(port)

    code, seconds = ingest.terminate(timeout=20)

    assert (code, seconds < 5) == (0, True)
    events = [line["event"] for line in ingest.lines()]
    assert events[-2:] == ["shutdown_requested", "shutdown"]


def test_ingest_serves_https_when_tls_is_configured(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    tls = {"certfile": str(tmp_path / "cert.pem"), "keyfile": str(tmp_path / "key.pem")}
    signer = SmnSigner(topic_urn=SIM_TOPIC)
    port = free_port()
    cert = signer.write_certificate(tmp_path / "sim.pem")
    start_ingest(tmp_path, config(bootstrap, name, port, cert, tls=tls), port)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    envelope = signer.envelope(cover_event("a-tls").decode())
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/smn",
        data=json.dumps(envelope).encode(),
        headers=SmnSigner.headers(envelope),
    )

    def answered() -> bool:
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(answered, 30, "an HTTPS 200")
    assert get(f"http://127.0.0.1:{port}/livez")[0] == 0  # no plain HTTP on a TLS port


def test_what_the_ingest_forwards_the_daemon_consumes(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 2))
    signer = SmnSigner(topic_urn=SIM_TOPIC)
    port = free_port()
    cert = signer.write_certificate(tmp_path / "sim.pem")
    key = "e2e-mfs-key"
    ingest = start_ingest(
        tmp_path,
        config(bootstrap, name, port, cert, mfs={"key": key}),
        port,
    )
    wait_ready(port)
    daemon = start_daemon(
        daemon_config(tmp_path, bootstrap, name, name, "log"), tmp_path / "daemon.log"
    )
    assert push(port, signer.envelope(cover_event("e2e-smn").decode()))[0] == 200
    body, headers = mfs_callback(json.loads(thumbnail_event("e2e-mfs")), key.encode())
    assert post(f"http://127.0.0.1:{port}/mfs", body, headers)[0] == 200
    binary = [("ce_specversion", b"1.0"), ("ce_id", b"ce-1"), ("ce_type", b"vod")]
    asyncio.run(produce_with_headers(bootstrap, name, cover_event("e2e-ce"), binary))

    daemon.wait_for(lambda: len(daemon.outcomes()) >= 3, 60, "three outcomes")

    seen = {(line["asset_id"], line["event_type"], line["outcome"]) for line in daemon.outcomes()}
    assert seen == {
        ("e2e-smn", "coverComplete", "done"),
        ("e2e-mfs", "thumbnailComplete", "done"),
        ("e2e-ce", "coverComplete", "done"),
    }
    daemon.terminate()
    ingest.process.send_signal(signal.SIGTERM)


async def produce_with_headers(
    bootstrap: str, topic: str, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, headers=headers)
    finally:
        await producer.stop()
