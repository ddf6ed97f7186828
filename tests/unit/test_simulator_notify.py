"""The simulator's notifications (consumer.devtools.simulator.notify): pushed over real
HTTP, tried again on 5xx or no answer as SMN does, and verifiable by the ingest."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from consumer.devtools.broker import free_port
from consumer.devtools.simulator.notify import SMN_RETRIES, Pusher, SmnSigner, TaskAnnouncer
from consumer.ingress.mfs import check, signed_contents
from consumer.ingress.smn import parse, verify
from consumer.testing.vodsim import TaskDone


@dataclass
class Receiver:
    """A local endpoint answering ``status`` and keeping what it got."""

    url: str
    status: list[int]
    got: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    status = [200]
    got: list[tuple[str, bytes, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((request.path, await request.read(), dict(request.headers)))
        return web.Response(status=status[0])

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield Receiver(str(server.make_url("")).rstrip("/"), status, got)


async def test_a_5xx_is_tried_again_six_times_then_given_up(receiver: Receiver) -> None:
    receiver.status[0] = 503
    async with aiohttp.ClientSession() as http:
        pusher = Pusher(http, receiver.url, SmnSigner(), retry_delays=[0] * SMN_RETRIES)

        status = await pusher.smn({"event_type": "coverComplete"})

    assert status == 503
    assert len(receiver.got) == 1 + SMN_RETRIES
    assert len({body for _, body, _ in receiver.got}) == 1  # the same delivery each time


async def test_a_4xx_is_not_tried_again(receiver: Receiver) -> None:
    receiver.status[0] = 403
    async with aiohttp.ClientSession() as http:
        pusher = Pusher(http, receiver.url, SmnSigner(), retry_delays=[0] * SMN_RETRIES)

        assert await pusher.smn({"event_type": "coverComplete"}) == 403

    assert len(receiver.got) == 1


async def test_no_answer_is_tried_again_and_counted_as_status_0() -> None:
    async with aiohttp.ClientSession() as http:
        pusher = Pusher(http, f"http://127.0.0.1:{free_port()}", retry_delays=[0, 0])

        assert await pusher.mfs({"event_type": "coverComplete"}) == 0

    assert (pusher.retries, pusher.answers["mfs", 0]) == (2, 1)


async def test_an_smn_push_verifies_with_the_signers_certificate(receiver: Receiver) -> None:
    signer = SmnSigner()
    async with aiohttp.ClientSession() as http:
        await Pusher(http, receiver.url, signer).smn({"event_type": "coverComplete"})

    [(path, body, headers)] = receiver.got
    message = parse(json.loads(body), headers["X-SMN-MESSAGE-TYPE"])
    key = signer.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    assert path == "/smn"
    assert verify(message, [key])


async def test_an_mfs_push_carries_the_consoles_hmac(receiver: Receiver) -> None:
    async with aiohttp.ClientSession() as http:
        await Pusher(http, receiver.url, mfs_key=b"k3y").mfs({"event_type": "coverComplete"})

    [(path, body, headers)] = receiver.got
    assert path == "/mfs"
    [documented, _] = signed_contents(json.loads(body), body)
    check(headers, [documented], b"k3y", 60, int(headers["auth_timestamp"]) / 1000)


async def test_the_announcer_alternates_transports_when_told_both(receiver: Receiver) -> None:
    done = TaskDone("a1", "task-1", succeeded=True, cover_url="https://cdn.example/c.jpg")
    async with aiohttp.ClientSession() as http:
        announcer = TaskAnnouncer(Pusher(http, receiver.url, SmnSigner(), b"k"), "both")

        await announcer(done)

    assert [path for path, _, _ in receiver.got] == ["/smn", "/mfs"]
    assert set(announcer.sent) == {
        ("thumbnailComplete", "smn", 200),
        ("coverComplete", "mfs", 200),
    }
