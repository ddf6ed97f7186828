"""``cover-consumer simulate-vod``: the simulator as a process, seeded from a file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from consumer.devtools.broker import free_port, wait_for_port
from consumer.ingress.certs import load_pinned
from consumer.ingress.smn import parse, verify
from consumer.vod.client import VodClient
from consumer.vod.errors import VodSystemicError
from consumer.vod.models import AssetDetail
from tests.support import REPO


@contextlib.contextmanager
def simulator(*args: str, secret: str) -> Iterator[int]:
    """A ``simulate-vod`` process on a free port, stopped by SIGTERM; yields the port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "consumer", "simulate-vod", "--port", str(port), *args],
        cwd=REPO,
        env={**os.environ, "COVER_CONSUMER_SIM_SECRET_KEY": secret},
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_a_seeded_simulator_process_serves_its_assets_to_a_signed_client(tmp_path: Path) -> None:
    seed = tmp_path / "assets.json"
    cover = "https://cdn.example/asset/a1/cover/Cover0.jpg"
    seed.write_text(json.dumps([{"asset_id": "a1", "cover": cover, "snapshots": [0, 12]}]))

    with simulator("--seed", str(seed), secret="seeded-secret") as port:
        detail = asyncio.run(_detail(port, "a1"))

    assert detail.cover_urls == [cover]
    assert [s.offset for s in detail.snapshots("sample")] == [0, 12]


async def _detail(port: int, asset_id: str) -> AssetDetail:
    async with aiohttp.ClientSession() as session:
        client = VodClient(
            session,
            endpoint=f"http://127.0.0.1:{port}",
            project_id="sim-project",
            access_key="sim-access-key",
            secret_key="seeded-secret",
        )
        return await client.show_asset_detail(asset_id)


def test_the_simulator_process_spells_gateway_codes_as_asked() -> None:
    with (
        simulator("--gateway-spelling", "APIGW", secret="the-real-secret") as port,
        pytest.raises(VodSystemicError) as caught,
    ):
        asyncio.run(_detail(port, "a1"))  # signed with "seeded-secret": refused

    assert caught.value.error_code == "APIGW.0301"


def test_a_simulator_process_pushes_its_seeded_assets_signed_to_a_url(tmp_path: Path) -> None:
    seed = tmp_path / "assets.json"
    seed.write_text(json.dumps([{"asset_id": "a1", "cover": "https://cdn.example/c.jpg"}]))
    cert = tmp_path / "smn.pem"
    got: list[tuple[dict[str, str], dict[str, str]]] = []

    async def scenario() -> None:
        async def receive(request: web.Request) -> web.Response:
            got.append((json.loads(await request.read()), dict(request.headers)))
            return web.Response(status=503 if len(got) == 1 else 200)  # one retry

        app = web.Application()
        app.router.add_post("/smn", receive)
        async with TestServer(app, host="127.0.0.1") as server:
            process = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "consumer", "simulate-vod", "--port", str(free_port())],
                *["--seed", str(seed), "--announce-seeded", "--smn-cert-out", str(cert)],
                *["--notify-url", str(server.make_url("")), "--notify-retry-delays", "0.1"],
                cwd=REPO,
                stderr=subprocess.DEVNULL,
            )
            try:
                for _ in range(200):
                    if len(got) >= 2:
                        break
                    await asyncio.sleep(0.05)
            finally:
                process.send_signal(signal.SIGTERM)
                await process.wait()

    asyncio.run(scenario())

    [(first, headers), (again, _)] = got
    assert first == again  # SMN tries the same message again after a 5xx
    message = parse(first, headers["X-SMN-MESSAGE-TYPE"])
    assert json.loads(message.fields["message"])["cover_info"]["status"] == "SUCCEED"
    assert verify(message, [pinned.key for pinned in load_pinned([cert])])
