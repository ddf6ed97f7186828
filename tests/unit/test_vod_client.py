"""consumer.vod.client against the simulator on a localhost port: real HTTP, real signing."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from consumer.devtools.simulator.app import make_app, run_simulator
from consumer.testing import ManualClock
from consumer.testing.vodsim import SimState, TaskDone
from consumer.vod.client import VodCall, VodClient, vod_session
from consumer.vod.credentials import StaticCredentials
from consumer.vod.errors import (
    VodPermanentError,
    VodRetryLater,
    VodSystemicError,
    VodThrottled,
    VodTransientError,
)
from consumer.vod.models import ProcessTaskRequest, ThumbnailParams, ThumbnailStatus
from consumer.vod.signing import Credentials, sign

PROJECT = "proj-1"
AK, SK = "AK-TEST", "sk-very-secret-value"
COVER = "https://cdn.example.com/asset/a1/cover/Cover0.jpg"


MakeClient = Callable[..., VodClient]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall_start=datetime(2026, 11, 21, 10, 0, tzinfo=UTC).timestamp())


@pytest.fixture
def state(clock: ManualClock) -> SimState:
    state = SimState(
        project_id=PROJECT,
        keys={AK: SK},
        clock=clock.wall,
        rng=random.Random(7),
    )
    state.add_asset("a1", cover=COVER, snapshots=[0, 12])
    return state


@pytest.fixture
async def endpoint(state: SimState) -> AsyncIterator[str]:
    runner = web.AppRunner(make_app(state), handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_client(endpoint: str, session: aiohttp.ClientSession, clock: ManualClock) -> MakeClient:
    def make(**overrides: Any) -> VodClient:
        options: dict[str, Any] = {
            "endpoint": endpoint,
            "project_id": PROJECT,
            "access_key": AK,
            "secret_key": SK,
            "clock": clock,
        }
        return VodClient(session, **(options | overrides))

    return make


@pytest.fixture
def client(make_client: MakeClient) -> VodClient:
    return make_client()


async def test_show_asset_detail_returns_cover_and_snapshots(client: VodClient) -> None:
    calls: list[VodCall] = []

    detail = await client.show_asset_detail("a1", calls=calls)

    assert detail.cover_urls == [COVER]
    assert [snap.offset for snap in detail.snapshots("sample")] == [0, 12]
    assert detail.thumbnail_info is not None
    assert detail.thumbnail_info.thumbnail_status == ThumbnailStatus.THUMBNAIL_SUCCEED
    [call] = calls
    assert (call.operation, call.status, call.error_code) == ("show_asset_detail", 200, None)
    assert call.request_id


async def test_update_cover_trims_the_url_and_sets_the_cover(
    client: VodClient, state: SimState
) -> None:
    snapshot = state.assets["a1"].snapshots["sample"][1].url

    await client.update_cover(f"  {snapshot}\n")

    assert state.assets["a1"].cover_source == snapshot


async def test_update_cover_with_a_url_not_among_the_snapshots_is_permanent(
    client: VodClient,
) -> None:
    with pytest.raises(VodPermanentError) as caught:
        await client.update_cover("https://cdn.example.com/asset/a1/snapshot/sample/99.jpg")

    assert caught.value.error_code == "VOD.10053"


async def test_process_task_takes_snapshots_and_sets_the_cover_after_a_delay(
    client: VodClient, state: SimState
) -> None:
    state.task_delay = 0.3
    request = ProcessTaskRequest(
        asset_id="a1", thumbnail=ThumbnailParams(type="dots", dots=[3, 7], cover_position=2)
    )

    started = await client.create_process_task(request)
    running = await client.show_asset_detail("a1")
    await state.settle()
    done = await client.show_asset_detail("a1")

    assert started.asset_id == "a1"
    assert started.thumbnail_task_id
    assert running.thumbnail_info is not None  # a1 has snapshots from an earlier task
    assert running.thumbnail_info.thumbnail_status == ThumbnailStatus.THUMBNAILING
    assert running.snapshots("dots") == []
    assert [snap.offset for snap in done.snapshots("dots")] == [3, 7]
    assert done.cover_urls == [state.cover_url("a1")]
    assert state.assets["a1"].cover_source == done.snapshots("dots")[1].url


async def test_a_first_task_runs_unseen_until_it_succeeds(
    client: VodClient, state: SimState
) -> None:
    state.add_asset("a2")
    state.task_delay = 0.3
    request = ProcessTaskRequest(
        asset_id="a2", thumbnail=ThumbnailParams(type="dots", dots=[3], cover_position=1)
    )

    await client.create_process_task(request)
    running = await client.show_asset_detail("a2")
    await state.settle()
    done = await client.show_asset_detail("a2")

    assert running.thumbnail_info is None  # VOD_API.md: absent until a task has succeeded
    assert done.thumbnail_info is not None
    assert done.thumbnail_info.thumbnail_status == ThumbnailStatus.THUMBNAIL_SUCCEED


async def test_a_second_task_while_one_runs_is_retry_later(
    client: VodClient, state: SimState
) -> None:
    state.task_delay = 5.0
    request = ProcessTaskRequest(
        asset_id="a1", thumbnail=ThumbnailParams(type="quantity", quantity=3)
    )
    await client.create_process_task(request)

    with pytest.raises(VodRetryLater) as caught:
        await client.create_process_task(request)

    assert caught.value.error_code == "VOD.10080"


async def test_a_failed_task_is_reported_to_on_task_done(
    client: VodClient, state: SimState
) -> None:
    finished: list[TaskDone] = []

    async def on_task_done(done: TaskDone) -> None:
        finished.append(done)

    state.task_failure_rate = 1.0
    state.on_task_done = on_task_done
    request = ProcessTaskRequest(asset_id="a1", thumbnail=ThumbnailParams(type="time", time=10))

    await client.create_process_task(request)
    await state.settle()

    [done] = finished
    assert (done.asset_id, done.succeeded, done.error_code) == ("a1", False, "VOD.10104")
    assert state.assets["a1"].thumbnail_status == ThumbnailStatus.THUMBNAIL_FAILED


async def test_unknown_asset_is_permanent_with_code_and_request_id(client: VodClient) -> None:
    calls: list[VodCall] = []

    with pytest.raises(VodPermanentError) as caught:
        await client.show_asset_detail("nope", calls=calls)

    assert (caught.value.status, caught.value.error_code) == (400, "VOD.10062")
    assert caught.value.request_id is not None
    assert calls[-1].request_id == caught.value.request_id
    assert calls[-1].error_code == "VOD.10062"


async def test_assets_are_created_on_demand_when_asked(client: VodClient, state: SimState) -> None:
    state.create_on_demand = True

    detail = await client.show_asset_detail("fresh")

    assert detail.cover_urls == []
    assert detail.snapshots("sample")


@pytest.mark.parametrize("spelling", ["APIG", "APIGW"])
async def test_a_wrong_secret_key_is_systemic_in_either_spelling(
    make_client: MakeClient, state: SimState, spelling: Literal["APIG", "APIGW"]
) -> None:
    state.gateway_spelling = spelling
    client = make_client(secret_key="not-the-secret")

    with pytest.raises(VodSystemicError) as caught:
        await client.show_asset_detail("a1")

    assert (caught.value.status, caught.value.error_code) == (401, f"{spelling}.0301")


@pytest.mark.parametrize("spelling", ["APIG", "APIGW"])
async def test_a_clock_16_minutes_off_is_systemic_in_either_spelling(
    make_client: MakeClient, state: SimState, clock: ManualClock, spelling: Literal["APIG", "APIGW"]
) -> None:
    state.gateway_spelling = spelling
    client = make_client(clock=ManualClock(wall_start=clock.wall() - 16 * 60))

    with pytest.raises(VodSystemicError) as caught:
        await client.show_asset_detail("a1")

    assert caught.value.error_code == f"{spelling}.0303"


@pytest.mark.parametrize("spelling", ["APIG", "APIGW"])
@pytest.mark.parametrize("code", ["APIG.0302", "APIG.0399"])  # known, and one no table has
async def test_a_gateway_403_is_systemic_in_either_spelling(
    client: VodClient, state: SimState, spelling: Literal["APIG", "APIGW"], code: str
) -> None:
    state.gateway_spelling = spelling
    state.gateway_refusal = (403, code, "refused")

    with pytest.raises(VodSystemicError) as caught:
        await client.show_asset_detail("a1")

    assert caught.value.status == 403
    assert caught.value.error_code == code.replace("APIG", spelling)


async def test_five_wrong_signatures_lock_the_key_for_five_minutes(
    make_client: MakeClient, client: VodClient, clock: ManualClock
) -> None:
    wrong = make_client(secret_key="not-the-secret")
    for _ in range(5):
        with pytest.raises(VodSystemicError):
            await wrong.show_asset_detail("a1")

    clock.now += 299
    with pytest.raises(VodSystemicError) as caught:
        await client.show_asset_detail("a1")
    assert caught.value.error_code == "APIG.0301"

    clock.now += 2
    assert (await client.show_asset_detail("a1")).asset_id == "a1"


async def test_a_good_signature_resets_the_failure_count(
    make_client: MakeClient, client: VodClient
) -> None:
    wrong = make_client(secret_key="not-the-secret")
    for _ in range(4):
        with pytest.raises(VodSystemicError):
            await wrong.show_asset_detail("a1")
    await client.show_asset_detail("a1")
    with pytest.raises(VodSystemicError):
        await wrong.show_asset_detail("a1")

    assert (await client.show_asset_detail("a1")).asset_id == "a1"


@pytest.mark.parametrize("spelling", ["APIG", "APIGW"])
async def test_writes_over_quota_are_throttled_until_the_window_passes(
    client: VodClient, state: SimState, clock: ManualClock, spelling: Literal["APIG", "APIGW"]
) -> None:
    state.gateway_spelling = spelling
    state.quotas.writes_per_minute = 2
    snapshot = state.assets["a1"].snapshots["sample"][0].url
    await client.update_cover(snapshot)
    await client.update_cover(snapshot)

    with pytest.raises(VodThrottled) as caught:
        await client.update_cover(snapshot)

    assert (caught.value.status, caught.value.error_code) == (429, f"{spelling}.0308")
    assert state.throttled == 1
    await client.show_asset_detail("a1")  # queries have their own quota
    clock.now += 60
    await client.update_cover(snapshot)


async def test_an_injected_5xx_is_transient(client: VodClient, state: SimState) -> None:
    state.faults.error_rate = 1.0

    with pytest.raises(VodTransientError) as caught:
        await client.show_asset_detail("a1")

    assert (caught.value.status, caught.value.error_code) == (500, "VOD.10051")
    assert state.count("show_asset_detail", "VOD.10051") == 1


async def test_a_timeout_is_transient_and_keeps_its_cause(
    make_client: MakeClient, state: SimState
) -> None:
    state.faults.timeout_rate = 1.0
    state.faults.timeout_sleep = 2.0
    client = make_client(timeout=0.2)
    calls: list[VodCall] = []

    with pytest.raises(VodTransientError) as caught:
        await client.show_asset_detail("a1", calls=calls)

    assert isinstance(caught.value.__cause__, TimeoutError)
    assert calls[-1].status is None


async def test_a_connection_reset_is_transient(client: VodClient, state: SimState) -> None:
    state.faults.reset_rate = 1.0

    with pytest.raises(VodTransientError) as caught:
        await client.update_cover(state.assets["a1"].snapshots["sample"][0].url)

    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectionError)
    # aiohttp itself resends an idempotent request once after a dropped connection.
    assert state.count("update_cover", "reset") >= 1


@pytest.mark.parametrize(("own_pool", "requests"), [(True, 1), (False, 2)])
async def test_a_reset_connection_is_one_request_at_vod_in_the_vod_pool_not_two(
    endpoint: str, state: SimState, clock: ManualClock, own_pool: bool, requests: int
) -> None:
    # aiohttp re-sends an idempotent request once on a reset; VOD would count it twice.
    state.faults.reset_rate = 1.0
    session = vod_session(4) if own_pool else aiohttp.ClientSession()
    async with session:
        client = VodClient(
            session,
            endpoint=endpoint,
            project_id=PROJECT,
            access_key=AK,
            secret_key=SK,
            clock=clock,
        )
        with pytest.raises(VodTransientError):
            await client.show_asset_detail("a1")

    assert state.count("show_asset_detail", "reset") == requests


async def test_the_simulator_rejects_a_body_tampered_after_signing(
    endpoint: str, session: aiohttp.ClientSession, clock: ManualClock
) -> None:
    path = f"/v1.0/{PROJECT}/asset/cover"
    signed_body = json.dumps({"thumbnailUrl": "https://x/asset/a1/snapshot/sample/0.jpg"})
    headers = sign(
        "PUT",
        endpoint.removeprefix("http://"),
        path,
        "",
        {"Content-Type": "application/json", "X-Project-Id": PROJECT},
        signed_body.encode(),
        Credentials(AK, SecretStr(SK)),
        datetime.fromtimestamp(clock.wall(), UTC),
    )
    tampered = signed_body.replace("0.jpg", "12.jpg").encode()

    async with session.put(endpoint + path, data=tampered, headers=headers) as response:
        body = await response.json()

    assert response.status == 401
    assert body["error_code"] == "APIG.0301"
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_repr_of_the_client_shows_no_secret(make_client: MakeClient) -> None:
    signed = make_client()
    temporary = make_client(security_token="security-token-secret")

    assert SK not in repr(signed)
    assert "security-token-secret" not in repr(temporary)
    assert "temporary" in repr(temporary)


async def test_run_simulator_serves_on_a_free_port_until_stopped(
    session: aiohttp.ClientSession, state: SimState, clock: ManualClock
) -> None:
    server = await run_simulator("127.0.0.1", 0, state)
    client = VodClient(
        session, endpoint=server.url, project_id=PROJECT, access_key=AK, secret_key=SK, clock=clock
    )
    try:
        assert (await client.show_asset_detail("a1")).asset_id == "a1"
    finally:
        await server.stop()

    with pytest.raises(VodTransientError):
        await client.show_asset_detail("a1")


@pytest.mark.parametrize(
    "auth",
    [
        {"access_key": AK},
        {"secret_key": SK, "security_token": "t"},
        {"credentials": StaticCredentials(Credentials(AK, SecretStr(SK))), "access_key": AK},
        {},
    ],
)
def test_the_client_needs_exactly_one_way_to_authenticate(
    session: aiohttp.ClientSession, auth: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="either"):
        VodClient(session, endpoint="http://x", project_id=PROJECT, **auth)
