"""Fetching signing_cert_url (consumer.ingress.certs), over real HTTPS: only URLs of the
documented shape, no redirects, size-capped, within validity dates, cached per URL.

A resolver sends every host to a local HTTPS server holding a certificate (trustme) for
the SMN host, so the fetcher's own checks are what is tested, not the network."""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import structlog
import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from consumer.devtools.simulator.notify import SmnSigner
from consumer.ingress.certs import MAX_CACHED, CertFetcher, TrustStore, load_pinned
from consumer.ingress.smn import parse

HOST = "smn.cn-north-4.myhuaweicloud.com"
PATH = "/smn/SMN_cn-north-4_" + "0123456789abcdef" * 2 + ".pem"


class Loopback(AbstractResolver):
    def __init__(self, port: int) -> None:
        self._port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=self._port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


@dataclass
class Smn:
    """The local 'SMN': what it serves per path, and every path asked for."""

    signer: SmnSigner
    http: aiohttp.ClientSession
    served: dict[str, web.Response | bytes] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def url(self, path: str = PATH, host: str = HOST) -> str:
        return f"https://{host}{path}"

    def message(self, url: str) -> Any:
        self.signer.signing_cert_url = url
        return parse(self.signer.envelope('{"event_type": "coverComplete"}'), "Notification")

    def store(self) -> TrustStore:
        return TrustStore(load_pinned(()), CertFetcher(self.http, structlog.get_logger()))


@pytest.fixture
async def smn() -> AsyncIterator[Smn]:
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST, "evil.example").configure_cert(server_ssl)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    state: dict[str, Smn] = {}

    async def serve(request: web.Request) -> web.StreamResponse:
        smn = state["smn"]
        smn.asked.append(request.path)
        answer = smn.served.get(request.path, smn.signer.cert_pem)
        return answer if isinstance(answer, web.Response) else web.Response(body=answer)

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    port = runner.addresses[0][1]
    connector = aiohttp.TCPConnector(resolver=Loopback(port), ssl=client_ssl)
    async with aiohttp.ClientSession(connector=connector) as http:
        state["smn"] = Smn(SmnSigner(), http)
        yield state["smn"]
    await runner.cleanup()


async def test_an_unpinned_key_verifies_once_its_certificate_is_fetched(smn: Smn) -> None:
    store = smn.store()

    assert await store.verify(smn.message(smn.url()))
    assert smn.asked == [PATH]


async def test_a_fetched_certificate_is_kept_per_url(smn: Smn) -> None:
    store = smn.store()
    await store.verify(smn.message(smn.url()))

    assert await store.verify(smn.message(smn.url()))
    assert smn.asked == [PATH]


async def test_without_fetching_an_unpinned_key_is_refused_and_nothing_fetched(smn: Smn) -> None:
    store = TrustStore(load_pinned(()))

    assert not await store.verify(smn.message(smn.url()))
    assert smn.asked == []


@pytest.mark.parametrize(
    "url",
    [
        f"https://evil.example{PATH}",
        f"http://{HOST}{PATH}",
        f"https://{HOST}/smn/other.pem",
        f"https://{HOST}{PATH}?x=1",
        f"https://{HOST}:8443{PATH}",
        f"https://{HOST}.evil.example{PATH}",
    ],
)
async def test_a_url_not_of_the_documented_shape_is_never_fetched(smn: Smn, url: str) -> None:
    assert not await smn.store().verify(smn.message(url))
    assert smn.asked == []


async def test_a_redirect_is_not_followed(smn: Smn) -> None:
    smn.served[PATH] = web.Response(status=302, headers={"Location": "/smn/elsewhere.pem"})

    assert not await smn.store().verify(smn.message(smn.url()))
    assert smn.asked == [PATH]


async def test_a_certificate_over_64_kib_is_refused(smn: Smn) -> None:
    smn.served[PATH] = smn.signer.cert_pem + b"\n" * 70_000

    assert not await smn.store().verify(smn.message(smn.url()))


async def test_an_expired_certificate_is_refused(smn: Smn) -> None:
    signer = smn.signer
    now = datetime.now(UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(signer.certificate.subject)
        .issuer_name(signer.certificate.subject)
        .public_key(signer.certificate.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1))
        .sign(signer._key, hashes.SHA256())
    )
    smn.served[PATH] = expired.public_bytes(serialization.Encoding.PEM)

    assert not await smn.store().verify(smn.message(smn.url()))


async def test_a_refused_url_is_not_fetched_again_for_a_while(smn: Smn) -> None:
    smn.served[PATH] = b"not a certificate"
    store = smn.store()

    assert not await store.verify(smn.message(smn.url()))
    assert not await store.verify(smn.message(smn.url()))
    assert smn.asked == [PATH]


async def test_forged_certificate_urls_cannot_grow_the_cache_past_its_bound(smn: Smn) -> None:
    store = smn.store()
    fetcher = store._fetcher
    assert fetcher is not None

    for n in range(MAX_CACHED + 10):
        forged = f"/smn/SMN_cn-north-4_{n:032x}.pem"
        smn.served[forged] = web.Response(status=404)
        assert not await store.verify(smn.message(smn.url(forged)))

    assert len(fetcher._cache) == MAX_CACHED
