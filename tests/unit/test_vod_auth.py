"""Authenticating to VOD against the simulator (real HTTP, real signing): temporary keys
and their security tokens, keys that expire or rotate under a running daemon and are read
again from their secret files on a 401, and the circuit closing once they are."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from pydantic import SecretStr
from structlog.testing import capture_logs

from consumer import logs
from consumer.config import Settings
from consumer.devtools.simulator.app import run_simulator
from consumer.dispatch.routing import Router
from consumer.service.wiring import build
from consumer.testing import ManualClock
from consumer.testing.vodsim import SimState
from consumer.vod.circuit import Circuit
from consumer.vod.client import VodCall, VodClient
from consumer.vod.credentials import CredentialField, SecretFileCredentials
from consumer.vod.errors import VodSystemicError
from consumer.vod.gateway import GuardedVod
from consumer.vod.quota import QuotaWindow
from consumer.vod.signing import Credentials, sign
from tests.fakes import WHOLE_QUOTA

PROJECT = "proj-1"
AK, SK = "AK-PERMANENT", "permanent-secret"
TMP_AK, TMP_SK, TOKEN = "AK-TEMPORARY-1", "temporary-secret-1", "security-token-1"
NEW_AK, NEW_SK, NEW_TOKEN = "AK-TEMPORARY-2", "temporary-secret-2", "security-token-2"
DAY = 24 * 3600.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall_start=datetime(2026, 11, 21, 10, 0, tzinfo=UTC).timestamp())


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[tuple[SimState, str]]:
    state = SimState(project_id=PROJECT, keys={AK: SK}, clock=clock.wall, rng=random.Random(7))
    grant(state, TMP_AK, TMP_SK, TOKEN, expires_at=clock.wall() + DAY)
    state.add_asset("a1", snapshots=[0, 12])
    server = await run_simulator("127.0.0.1", 0, state)
    yield state, server.url
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def grant(state: SimState, access_key: str, secret: str, token: str, expires_at: float) -> None:
    """IAM hands out a temporary key: VOD's gateway knows it until it expires."""
    state.keys[access_key] = secret
    state.temporary[access_key] = (token, expires_at)


def write_key(directory: Path, access_key: str, secret: str, token: str | None) -> None:
    """What the kubelet does when the Secret changes: new files, all at once."""
    directory.mkdir(exist_ok=True)
    (directory / "vod__access_key").write_text(access_key)
    (directory / "vod__secret_key").write_text(f"{secret}\n")  # files end in newlines
    if token is None:
        (directory / "vod__security_token").unlink(missing_ok=True)
    else:
        (directory / "vod__security_token").write_text(token)


def from_files(directory: Path, initial: Credentials) -> SecretFileCredentials:
    parts: tuple[CredentialField, ...] = ("access_key", "secret_key", "security_token")
    return SecretFileCredentials(initial, {p: directory / f"vod__{p}" for p in parts})


def temporary(access_key: str = TMP_AK, secret: str = TMP_SK, token: str = TOKEN) -> Credentials:
    return Credentials(access_key, SecretStr(secret), SecretStr(token))


def client_for(
    session: aiohttp.ClientSession, url: str, clock: ManualClock, **auth: Any
) -> VodClient:
    return VodClient(session, endpoint=url, project_id=PROJECT, clock=clock, **auth)


async def test_a_temporary_key_with_its_security_token_is_accepted(
    sim: tuple[SimState, str], session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, url = sim
    client = client_for(
        session, url, clock, access_key=TMP_AK, secret_key=TMP_SK, security_token=TOKEN
    )

    assert (await client.show_asset_detail("a1")).asset_id == "a1"


@pytest.mark.parametrize(
    ("access_key", "secret", "token"),
    [
        (TMP_AK, TMP_SK, None),  # the temporary key without its token
        (TMP_AK, TMP_SK, "someone-elses-token"),
        (AK, SK, TOKEN),  # a permanent key with a token
    ],
)
async def test_a_security_token_that_does_not_go_with_the_key_is_systemic(
    sim: tuple[SimState, str],
    session: aiohttp.ClientSession,
    clock: ManualClock,
    access_key: str,
    secret: str,
    token: str | None,
) -> None:
    _, url = sim
    client = client_for(
        session, url, clock, access_key=access_key, secret_key=secret, security_token=token
    )

    with pytest.raises(VodSystemicError) as caught:
        await client.show_asset_detail("a1")

    assert (caught.value.status, caught.value.error_code) == (401, "APIG.0301")


async def test_a_security_token_added_after_signing_is_refused(
    sim: tuple[SimState, str], session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    # Unsigned, a captured token could be swapped onto any other request of the key.
    _, url = sim
    path = f"/v1.0/{PROJECT}/asset/details"
    headers = sign(
        "GET",
        url.removeprefix("http://"),
        path,
        "asset_id=a1",
        {"X-Project-Id": PROJECT},
        b"",
        Credentials(TMP_AK, SecretStr(TMP_SK)),
        datetime.fromtimestamp(clock.wall(), UTC),
    )
    headers["X-Security-Token"] = TOKEN

    async with session.get(f"{url}{path}?asset_id=a1", headers=headers) as response:
        body = await response.json()

    assert (response.status, body["error_code"]) == (401, "APIG.0301")


async def test_a_temporary_key_fails_every_call_once_it_has_expired(
    sim: tuple[SimState, str], session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    _, url = sim
    client = client_for(
        session, url, clock, credentials=from_files(Path("/nonexistent"), temporary())
    )
    await client.show_asset_detail("a1")

    clock.advance(DAY)
    with pytest.raises(VodSystemicError) as caught:
        await client.show_asset_detail("a1")

    assert (caught.value.status, caught.value.error_code) == (401, "APIG.0301")


async def test_a_key_renewed_in_its_secret_files_is_used_after_one_401(
    sim: tuple[SimState, str], session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    state, url = sim
    write_key(tmp_path, TMP_AK, TMP_SK, TOKEN)
    client = client_for(session, url, clock, credentials=from_files(tmp_path, temporary()))
    clock.advance(DAY)  # the first key has expired: a rotator renewed it
    grant(state, NEW_AK, NEW_SK, NEW_TOKEN, expires_at=clock.wall() + DAY)
    write_key(tmp_path, NEW_AK, NEW_SK, NEW_TOKEN)
    calls: list[VodCall] = []

    detail = await client.show_asset_detail("a1", calls=calls)

    assert detail.asset_id == "a1"
    assert [(call.status, call.error_code) for call in calls] == [(401, "APIG.0301"), (200, None)]


async def test_a_401_is_not_sent_again_when_the_files_still_hold_the_same_key(
    sim: tuple[SimState, str], session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    # Sending a refused key again only brings VOD's lock (5 failures) closer.
    state, url = sim
    write_key(tmp_path, TMP_AK, TMP_SK, TOKEN)
    client = client_for(session, url, clock, credentials=from_files(tmp_path, temporary()))
    clock.advance(DAY)

    with pytest.raises(VodSystemicError):
        await client.show_asset_detail("a1")

    assert state.count("show_asset_detail") == 1


async def test_a_permanent_key_rotated_in_its_file_is_used_after_one_401(
    sim: tuple[SimState, str], session: aiohttp.ClientSession, clock: ManualClock, tmp_path: Path
) -> None:
    state, url = sim
    write_key(tmp_path, AK, SK, None)
    client = client_for(
        session, url, clock, credentials=from_files(tmp_path, Credentials(AK, SecretStr(SK)))
    )
    state.keys[AK] = "rotated-secret"  # the old secret is revoked at VOD's side
    write_key(tmp_path, AK, "rotated-secret", None)

    assert (await client.show_asset_detail("a1")).asset_id == "a1"
    assert state.count("show_asset_detail") == 2


async def test_a_token_file_that_is_gone_means_a_permanent_key(tmp_path: Path) -> None:
    write_key(tmp_path, AK, SK, None)
    source = from_files(tmp_path, temporary())

    assert source.reload() == Credentials(AK, SecretStr(SK))


async def test_the_current_key_stays_while_its_files_cannot_be_read(tmp_path: Path) -> None:
    write_key(tmp_path, NEW_AK, NEW_SK, NEW_TOKEN)
    (tmp_path / "vod__secret_key").unlink()  # caught halfway through a rewrite
    source = from_files(tmp_path, temporary())

    assert source.reload() == temporary()


def test_a_key_read_again_is_scrubbed_from_every_log_line(tmp_path: Path) -> None:
    secret = f"{NEW_SK}-only-in-a-file"
    write_key(tmp_path, NEW_AK, secret, NEW_TOKEN)

    from_files(tmp_path, temporary()).reload()

    assert secret not in logs.scrub(f"boom: {secret}")
    assert NEW_TOKEN not in logs.scrub(f"boom: {NEW_TOKEN}")


async def test_the_daemons_wiring_reads_a_key_given_by_secret_files_again(
    sim: tuple[SimState, str],
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = sim
    secrets = tmp_path / "secrets"
    write_key(secrets, TMP_AK, TMP_SK, TOKEN)
    monkeypatch.setenv("COVER_CONSUMER_SECRETS_DIR", str(secrets))
    settings = Settings(
        vod={
            "endpoint": url,
            "project_id": PROJECT,
            "access_key": TMP_AK,
            "secret_key": TMP_SK,
            "security_token": TOKEN,
        }
    )
    clock.advance(DAY)
    grant(state, NEW_AK, NEW_SK, NEW_TOKEN, expires_at=clock.wall() + DAY)
    write_key(secrets, NEW_AK, NEW_SK, NEW_TOKEN)
    async with aiohttp.ClientSession() as http:
        parts = build(settings, Router.from_specs(None), http, structlog.get_logger(), clock)
        try:
            assert parts.vod is not None
            parts.vod.set_share(WHOLE_QUOTA)  # as on a partition assignment
            detail = await parts.vod.show_asset_detail("a1")
        finally:  # the Kafka clients were built, never started
            await parts.sink.close(1)
            await parts.source.close(1)
            await parts.close_vod()

    assert detail.asset_id == "a1"
    assert not parts.vod.circuit.is_open


async def test_the_circuit_opened_by_an_expired_key_closes_once_its_files_are_renewed(
    session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # Real time here: the prober waits its interval for real, the simulator checks expiry.
    state = SimState(project_id=PROJECT)
    state.add_asset("a1", snapshots=[0])
    grant(state, TMP_AK, TMP_SK, TOKEN, expires_at=0.0)  # expired already
    server = await run_simulator("127.0.0.1", 0, state)
    write_key(tmp_path, TMP_AK, TMP_SK, TOKEN)
    client = VodClient(
        session,
        endpoint=server.url,
        project_id=PROJECT,
        credentials=from_files(tmp_path, temporary()),
    )
    circuit = Circuit(
        lambda: client.show_asset_detail("0" * 32, ("base_info",)), 0.05, structlog.get_logger()
    )
    vod = GuardedVod(client, circuit, QuotaWindow(100), QuotaWindow(1500), max_concurrent=4)
    vod.set_share(WHOLE_QUOTA)
    try:
        with capture_logs() as lines:
            with pytest.raises(VodSystemicError):
                await vod.show_asset_detail("a1")
            assert vod.circuit.is_open
            grant(state, NEW_AK, NEW_SK, NEW_TOKEN, expires_at=state.clock() + DAY)
            write_key(tmp_path, NEW_AK, NEW_SK, NEW_TOKEN)

            await asyncio.wait_for(vod.circuit.wait_closed(), 5)
            detail = await vod.show_asset_detail("a1")
    finally:
        vod.circuit.stop()
        await server.stop()

    assert detail.asset_id == "a1"
    assert [line["event"] for line in lines if line["event"].startswith("vod_circuit_")][
        -1
    ] == "vod_circuit_closed"
