"""The contract with Huawei's official Python SDK (huaweicloudsdkcore, huaweicloudsdkvod).

Our client and our simulator were both written from the documentation; the SDK is what
Huawei ships and VOD answers, so where they disagree the SDK wins. Here the SDK's own
client calls the simulator over HTTP (its signer, its headers, its response models and
its error reading), and its signer is compared with ``consumer.vod.signing.sign`` byte for
byte. The SDK is synchronous: its calls run in a thread beside the simulator's loop.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkcore.warning.warning import TypeConversionWarning
from huaweicloudsdkvod.v1 import VodClient as SdkVodClient
from huaweicloudsdkvod.v1.model import (
    AssetProcessReq,
    CreateAssetProcessTaskRequest,
    ListThumbnailInfoRequest,
    ShowAssetDetailRequest,
    Thumbnail,
    UpdateCoverByThumbnailReq,
    UpdateCoverByThumbnailRequest,
)
from pydantic import SecretStr

from consumer.devtools.simulator.app import run_simulator
from consumer.testing.vodsim import SimState
from consumer.vod.client import VodClient
from consumer.vod.errors import VodPermanentError, VodSystemicError, classify
from consumer.vod.models import AssetDetail, ProcessTaskResponse, ThumbnailTasks
from consumer.vod.signing import Credentials, canonical_query, sign

PROJECT = "0123456789abcdef0123456789abcdef"
AK, SK = "PERMANENTAKEXAMPLE01", "permanent-secret-key-example"
TMP_AK, TMP_SK, TOKEN = "TEMPORARYAKEXAMPLE01", "temporary-secret-key", "gQpjbi1ub3J0aC00-token"
COVER = "https://sim.cdn-vod.example.com/asset/a1/cover/Cover0.jpg"

Spelling = Literal["APIG", "APIGW"]


@pytest.fixture(autouse=True)
def _sdk_type_mismatches_fail() -> Iterator[None]:
    # The SDK only warns when a field's JSON type is not the model's: here that fails.
    with warnings.catch_warnings():
        warnings.simplefilter("error", TypeConversionWarning)
        yield


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimState, str]]:
    state = SimState(project_id=PROJECT, keys={AK: SK, TMP_AK: TMP_SK}, task_delay=0.01)
    state.temporary[TMP_AK] = (TOKEN, state.clock() + 3600)
    state.add_asset("a1", cover=COVER, snapshots=[0, 12], title="Avatar")
    server = await run_simulator("127.0.0.1", 0, state)
    yield state, server.url
    await state.settle()
    await server.stop()


SdkFactory = Callable[..., Any]


@pytest.fixture
def sdk(sim: tuple[SimState, str]) -> Iterator[SdkFactory]:
    """The SDK's VodClient on the simulator: ``sdk()`` signs with the permanent key,
    ``sdk(temporary=True)`` with the temporary one and its security token."""
    built: list[Any] = []

    def make(*, temporary: bool = False, secret: str | None = None) -> Any:
        if temporary:
            credentials = BasicCredentials(TMP_AK, TMP_SK, PROJECT).with_security_token(TOKEN)
        else:
            credentials = BasicCredentials(AK, secret or SK, PROJECT)
        config = HttpConfig.get_default_config()
        config.timeout = 5
        client = (
            SdkVodClient.new_builder()
            .with_http_config(config)
            .with_credentials(credentials)
            .with_endpoint(sim[1])
            .build()
        )
        built.append(client)
        return client

    yield make
    for client in built:
        client.close()


async def call(function: Callable[..., Any], *args: Any) -> Any:
    """A synchronous SDK call, off the loop the simulator answers on."""
    return await asyncio.to_thread(function, *args)


def show_request(asset_id: str = "a1") -> Any:
    return ShowAssetDetailRequest(asset_id=asset_id, categories=["base_info", "thumbnail_info"])


# The simulator's answers, read by the SDK's response models.


@pytest.mark.parametrize("temporary", [False, True])
async def test_the_sdk_reads_show_asset_detail_as_our_model_does(
    sim: tuple[SimState, str], sdk: SdkFactory, temporary: bool
) -> None:
    answer = await call(sdk(temporary=temporary).show_asset_detail, show_request())
    ours = AssetDetail.model_validate_json(answer.raw_content)

    assert answer.status_code == 200
    assert answer.asset_id == ours.asset_id == "a1"
    assert answer.base_info.title == "Avatar"
    assert [c.cover_url for c in answer.base_info.cover_info_array] == ours.cover_urls == [COVER]
    sdk_samples = [(s.offset, s.url) for s in answer.thumbnail_info.sample]
    assert sdk_samples == [(s.offset, s.url) for s in ours.snapshots("sample")]
    assert [offset for offset, _ in sdk_samples] == [0, 12]
    assert answer.thumbnail_info.dots == []
    assert answer.thumbnail_info.quantity == []
    assert answer.thumbnail_info.thumbnail_status == "THUMBNAIL_SUCCEED"
    assert answer.base_info.meta_data.duration == 60


async def test_the_sdk_sets_a_cover_from_a_snapshot(
    sim: tuple[SimState, str], sdk: SdkFactory
) -> None:
    state, _ = sim
    snapshot = state.assets["a1"].snapshots["sample"][1].url
    request = UpdateCoverByThumbnailRequest(body=UpdateCoverByThumbnailReq(thumbnail_url=snapshot))

    answer = await call(sdk().update_cover_by_thumbnail, request)

    assert answer.status_code == 204
    assert state.assets["a1"].cover_source == snapshot


async def test_the_sdk_reads_a_process_task_answer_as_our_model_does(
    sim: tuple[SimState, str], sdk: SdkFactory
) -> None:
    state, _ = sim
    body = AssetProcessReq(
        asset_id="a1", thumbnail=Thumbnail(type="dots", dots=[3, 7], cover_position=2)
    )

    answer = await call(sdk().create_asset_process_task, CreateAssetProcessTaskRequest(body=body))
    await state.settle()
    ours = ProcessTaskResponse.model_validate_json(answer.raw_content)

    assert answer.status_code == 202
    assert (answer.asset_id, answer.thumbnail_task_id) == (ours.asset_id, ours.thumbnail_task_id)
    assert answer.thumbnail_task_id
    assert [s.offset for s in state.assets["a1"].snapshots["dots"]] == [3, 7]


async def test_a_single_snapshot_task_answered_without_a_task_id_reads_alike(
    sim: tuple[SimState, str], sdk: SdkFactory
) -> None:
    # The SDK documents thumbnail_task_id as "returned only for multi-snapshot tasks".
    state, _ = sim
    body = AssetProcessReq(asset_id="a1", thumbnail=Thumbnail(type="dots", dots=[0]))

    answer = await call(sdk().create_asset_process_task, CreateAssetProcessTaskRequest(body=body))
    await state.settle()
    ours = ProcessTaskResponse.model_validate_json(answer.raw_content)

    assert "thumbnail_task_id" not in json.loads(answer.raw_content)
    assert (answer.asset_id, answer.thumbnail_task_id) == ("a1", None)
    assert (ours.asset_id, ours.thumbnail_task_id) == ("a1", None)


async def test_the_sdk_reads_the_task_list_as_our_model_does(
    sim: tuple[SimState, str], sdk: SdkFactory
) -> None:
    state, _ = sim
    client = sdk()
    body = AssetProcessReq(
        asset_id="a1", thumbnail=Thumbnail(type="dots", dots=[0], cover_position=1)
    )
    await call(client.create_asset_process_task, CreateAssetProcessTaskRequest(body=body))
    await state.settle()

    answer = await call(client.list_thumbnail_info, ListThumbnailInfoRequest(asset_id="a1"))
    ours = ThumbnailTasks.model_validate_json(answer.raw_content)

    assert answer.status_code == 200
    assert answer.total == ours.total == 1
    [task], [mine] = answer.thumbnails, ours.thumbnails
    assert task.task_id == mine.task_id
    assert (task.thumbnail_para.type, task.thumbnail_para.dots) == ("dots", [0])
    assert mine.is_head_frame


# Error answers, read by the SDK's exception handler and by ``classify`` alike.


@pytest.mark.parametrize("spelling", ["APIG", "APIGW"])
async def test_a_refused_signature_reads_the_same_to_the_sdk_and_to_us(
    sim: tuple[SimState, str], sdk: SdkFactory, spelling: Spelling
) -> None:
    state, url = sim
    state.gateway_spelling = spelling

    with pytest.raises(ClientRequestException) as caught:
        await call(sdk(secret="not-the-secret").show_asset_detail, show_request())
    async with aiohttp.ClientSession() as session:
        ours = VodClient(session, endpoint=url, project_id=PROJECT, access_key=AK, secret_key="x")
        with pytest.raises(VodSystemicError) as mine:
            await ours.show_asset_detail("a1")

    assert (caught.value.status_code, caught.value.error_code) == (401, f"{spelling}.0301")
    assert caught.value.request_id  # from X-Request-Id, as ours
    assert mine.value.error_code == caught.value.error_code


@pytest.mark.parametrize(
    ("refusal", "expected"),
    [
        ((400, "VOD.10062", "asset does not exist"), VodPermanentError),
        ((403, "VOD.10062", "asset does not exist"), VodPermanentError),
        ((403, "APIG.0302", "the IAM user is not authorized"), VodSystemicError),
        ((403, "APIG.0399", "a refusal no table lists"), VodSystemicError),
    ],
)
@pytest.mark.parametrize("spelling", ["APIG", "APIGW"])
async def test_error_bodies_give_the_sdk_the_code_classify_reads(
    sim: tuple[SimState, str],
    sdk: SdkFactory,
    spelling: Spelling,
    refusal: tuple[int, str, str],
    expected: type[Exception],
) -> None:
    state, _ = sim
    state.gateway_spelling = spelling
    state.gateway_refusal = refusal
    status, code, message = refusal

    with pytest.raises(ClientRequestException) as caught:
        await call(sdk().show_asset_detail, show_request())
    error = caught.value
    ours = classify(error.status_code, {"error_code": error.error_code, "error_msg": message}, None)

    assert (error.status_code, error.error_code) == (status, code.replace("APIG", spelling))
    assert error.error_msg == message
    assert type(ours) is expected


# The signer, byte for byte, and the simulator's check of what it signs.

SIGNED_AT = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
HOST = "vod.cn-north-4.myhuaweicloud.com"
DETAILS = f"/v1.0/{PROJECT}/asset/details"
COVER_PATH = f"/v1.0/{PROJECT}/asset/cover"
PAIRS = [("asset_id", "a1"), ("categories", "thumbnail_info"), ("categories", "base_info")]
COVER_BODY = b'{"thumbnailUrl":"https://sim.cdn-vod.example.com/asset/a1/snapshot/sample/0.jpg"}'

CASES = {
    "show_asset_detail": ("GET", DETAILS, PAIRS, b"", None),
    "update_cover": ("PUT", COVER_PATH, [], COVER_BODY, "application/json"),
    "a non-JSON body, unsigned": ("PUT", COVER_PATH, [], b"\xff\xd8", "image/jpeg"),
    "no body, non-JSON type": ("GET", DETAILS, PAIRS, b"", "text/plain"),
}


def sdk_signed(
    case: tuple[str, str, list[tuple[str, str]], bytes, str | None], token: str | None
) -> Any:
    method, path, pairs, body, content_type = case
    headers = {"X-Sdk-Date": SIGNED_AT.strftime("%Y%m%dT%H%M%SZ")}
    if content_type is not None:
        headers["Content-Type"] = content_type
    request = SdkRequest(
        method=method,
        schema="https",
        host=HOST,
        resource_path=path,
        query_params=list(pairs),
        header_params=headers,
        body=body or None,
    )
    key, secret = (TMP_AK, TMP_SK) if token else (AK, SK)
    credentials = BasicCredentials(key, secret, PROJECT)
    if token:
        credentials.with_security_token(token)
    # What the SDK's client does for each call: project id, then the token, then Signer.
    return credentials.sign_request(request)


def our_signed(
    case: tuple[str, str, list[tuple[str, str]], bytes, str | None], token: str | None
) -> tuple[dict[str, str], str]:
    method, path, pairs, body, content_type = case
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    query = canonical_query(params)
    headers = {"X-Project-Id": PROJECT}
    if content_type is not None:
        headers["Content-Type"] = content_type
    key = Credentials(TMP_AK, SecretStr(TMP_SK), SecretStr(token)) if token else None
    credentials = key or Credentials(AK, SecretStr(SK))
    signed = sign(method, HOST, path, query, headers, body, credentials, SIGNED_AT)
    return signed, path + (f"?{query}" if query else "")


@pytest.mark.parametrize("token", [None, TOKEN], ids=["permanent", "temporary"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_our_signature_is_the_sdks_byte_for_byte(case: str, token: str | None) -> None:
    sdk_request = sdk_signed(CASES[case], token)
    ours, wire = our_signed(CASES[case], token)

    assert ours == sdk_request.header_params
    assert wire == sdk_request.uri  # the query goes out as it was signed


def test_the_security_token_is_a_signed_header() -> None:
    signed = sdk_signed(CASES["show_asset_detail"], TOKEN).header_params

    assert signed["X-Security-Token"] == TOKEN
    assert "x-security-token" in signed["Authorization"].split("SignedHeaders=")[1]


def test_the_sdks_signer_keeps_the_official_test_vector() -> None:
    # The vector VOD_API.md and tests/unit/test_vod_signing.py pin ours with.
    request = SdkRequest(
        method="GET",
        schema="https",
        host="service.endpoint.myhuaweicloud.com",
        resource_path="/resources",
        query_params=[("size", "1")],
        header_params={"X-Sdk-Date": "20200608T023900Z", "TEST_UNDERSCORE": "TEST_VALUE"},
    )

    signed = Signer(BasicCredentials("AccessKey", "SecretKey")).sign(request)

    assert signed.header_params["Authorization"].endswith(
        "Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
    )
