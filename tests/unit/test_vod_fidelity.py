"""Where real VOD differs from what a client naively expects, against the simulator over
real HTTP: optional task ids, lost answers, lenient bodies, short videos, Retry-After,
covers that take minutes to show."""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import structlog

from consumer.config.vod import CoverSettings
from consumer.devtools.simulator.app import run_simulator
from consumer.events import Event, decode
from consumer.handlers import Clients, Context, Handler, RecordMeta
from consumer.handlers.covers import fallback_cover, regenerate_head_frame
from consumer.outcomes import DONE, Failed, Outcome, Retry
from consumer.testing import ManualClock
from consumer.testing.vodsim import SimState
from consumer.vod.client import VodClient, vod_session
from consumer.vod.errors import VodThrottled
from consumer.vod.models import AssetDetail, ProcessTaskRequest, ThumbnailParams

PROJECT, AK, SK = "proj-1", "AK-FID", "sk-fidelity"
SETTINGS = CoverSettings(regenerate_check_delay=120.0, verify_delay=240.0, verify_checks=2)


@dataclass
class Vod:
    state: SimState
    client: VodClient
    clock: ManualClock
    memo: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    first_seen_ms: int = 0

    async def call(self, handler: Handler, event: Event, attempt: int = 1) -> Outcome:
        first_seen = self.first_seen_ms or int(self.clock.wall() * 1000)
        self.first_seen_ms = first_seen
        meta = RecordMeta("t", 0, 1, None, 0, first_seen)
        clients = Clients(http=None, vod=self.client, covers=SETTINGS)  # type: ignore[arg-type]
        ctx = Context(
            structlog.get_logger(),
            {},
            meta,
            clients,
            self.notes,
            attempt,
            False,
            "h",
            self.memo,
            self.clock,
        )
        return await handler(event, ctx)


@pytest.fixture
async def vod() -> AsyncIterator[Vod]:
    clock = ManualClock(wall_start=datetime(2026, 11, 21, 10, 0, tzinfo=UTC).timestamp())
    state = SimState(project_id=PROJECT, keys={AK: SK}, clock=clock.wall, rng=random.Random(3))
    server = await run_simulator("127.0.0.1", 0, state)
    async with vod_session(4) as session:
        client = VodClient(
            session,
            endpoint=server.url,
            project_id=PROJECT,
            access_key=AK,
            secret_key=SK,
            clock=clock,
        )
        yield Vod(state, client, clock)
    await server.stop()


def cover_failed(asset_id: str) -> Event:
    info = {"status": "FAILED", "asset_id": asset_id, "cover_type": "HEAD_FRAME_COVER"}
    return decode(json.dumps({"event_type": "coverComplete", "cover_info": info}).encode())


def task(asset_id: str, dots: list[int]) -> ProcessTaskRequest:
    return ProcessTaskRequest(
        asset_id=asset_id, thumbnail=ThumbnailParams(type="dots", dots=dots, cover_position=1)
    )


# 1. thumbnail_task_id is optional ------------------------------------------------------


async def test_a_single_snapshot_task_is_accepted_without_a_task_id(vod: Vod) -> None:
    vod.state.add_asset("a1")
    vod.state.task_delay = 30

    single = await vod.client.create_process_task(task("a1", [0]))
    vod.state.add_asset("a2")
    multi = await vod.client.create_process_task(task("a2", [1, 5]))

    assert (single.asset_id, single.thumbnail_task_id) == ("a1", None)
    assert multi.thumbnail_task_id == vod.state.assets["a2"].running_task
    assert vod.state.count("create_process_task", "ok") == 2


# 2. a task request without an answer is never sent twice ----------------------------------


async def test_a_task_request_whose_answer_was_lost_is_found_not_sent_again(vod: Vod) -> None:
    asset = vod.state.add_asset("a1")
    vod.state.task_delay = 30
    vod.state.faults.lost_answer_rate = 1.0  # VOD starts the task; the answer never comes

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"))
    vod.state.faults.lost_answer_rate = 0.0
    again = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=2)

    assert outcome == Retry("waiting for the regenerated cover", after=120.0)
    assert again == outcome
    assert len(asset.tasks) == 1  # one billed task, whatever the network did
    assert vod.state.count("create_process_task") == 1
    assert vod.notes["snapshot_task"] == asset.tasks[0]["task_id"]
    assert vod.notes["vod_billed_tasks"] == 1


async def test_a_lost_task_request_is_found_past_vods_first_page_of_ten_tasks(vod: Vod) -> None:
    # ListThumbnailInfo lists 10 tasks unless asked for more: the 13th, started by the
    # lost request, would not be seen, and a second billed task would follow.
    asset = vod.state.add_asset("a1")  # no snapshots: the fallback asks for some
    old = {"status": "SUCCEED", "thumbnail_para": {"type": "sample"}}
    asset.tasks.extend({**old, "task_id": f"old-{n}"} for n in range(12))
    vod.state.task_delay = 30
    vod.state.faults.lost_answer_rate = 1.0

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Retry("requested snapshots", after=SETTINGS.snapshot_retry_after)
    assert vod.state.count("create_process_task") == 1
    assert len(asset.tasks) == 13


async def test_a_lost_task_request_is_found_on_an_asset_with_more_tasks_than_a_page(
    vod: Vod,
) -> None:
    # A page holds at most 100 tasks: past that, only ListThumbnailInfo's total tells
    # that one more was started.
    asset = vod.state.add_asset("a1")
    old = {"status": "SUCCEED", "thumbnail_para": {"type": "sample"}}
    asset.tasks.extend({**old, "task_id": f"old-{n}"} for n in range(120))
    vod.state.task_delay = 30
    vod.state.faults.lost_answer_rate = 1.0

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Retry("requested snapshots", after=SETTINGS.snapshot_retry_after)
    assert vod.state.count("create_process_task") == 1
    assert len(asset.tasks) == 121
    assert vod.notes["snapshot_task_started"] is True


async def test_a_lost_task_request_is_found_when_vod_lists_tasks_without_ids(vod: Vod) -> None:
    vod.state.add_asset("a1")
    vod.state.task_delay = 30
    vod.state.faults.lost_answer_rate = 1.0
    vod.state.list_task_ids = False  # every field of a listed task is optional in the SDK

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Retry("requested snapshots", after=SETTINGS.snapshot_retry_after)
    assert vod.state.count("create_process_task") == 1
    assert vod.notes["snapshot_task_started"] is True


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_task_request_answered_by_a_gateway_error_is_looked_for_not_sent_again(
    vod: Vod, status: int
) -> None:
    # The gateway gave up on VOD's answer, VOD started the task all the same: a 5xx is
    # no proof that nothing was started, only a throttled call is.
    asset = vod.state.add_asset("a1")  # no snapshots: the fallback asks for some
    vod.state.task_delay = 30
    vod.state.faults.lost_answer_rate = 1.0
    vod.state.faults.lost_answer_status = status

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Retry("requested snapshots", after=SETTINGS.snapshot_retry_after)
    assert vod.state.count("create_process_task") == 1
    assert len(asset.tasks) == 1
    assert vod.notes["snapshot_task_started"] is True
    assert vod.notes["vod_billed_tasks"] == 1


async def test_a_throttled_task_request_is_not_looked_for(vod: Vod) -> None:
    vod.state.add_asset("a1")
    vod.state.quotas.writes_per_minute = 0

    with pytest.raises(VodThrottled):
        await vod.call(fallback_cover, cover_failed("a1"))

    ops = [call["op"] for call in vod.notes["vod_calls"]]
    assert ops.count("list_thumbnail_tasks") == 1  # the one before the request only
    assert ops[-1] == "create_process_task"


async def test_a_duplicate_event_does_not_pay_for_a_second_regeneration(vod: Vod) -> None:
    vod.state.add_asset("a1")
    vod.state.task_delay = 30
    await vod.call(regenerate_head_frame, cover_failed("a1"))
    duplicate = Vod(vod.state, vod.client, vod.clock)  # the same event, delivered again

    outcome = await duplicate.call(regenerate_head_frame, cover_failed("a1"))

    assert isinstance(outcome, Retry)
    assert vod.state.count("create_process_task") == 1


# 5. lenient bodies ----------------------------------------------------------------------


def test_nulls_and_fractional_offsets_in_an_answer_read_as_empty_and_exact() -> None:
    body = {
        "asset_id": "a1",
        "base_info": {"cover_info_array": None, "meta_data": {"duration": 3.5}},
        "thumbnail_info": {"sample": None, "dots": [{"offset": 1.5, "url": "u"}], "quantity": None},
    }

    detail = AssetDetail.model_validate_json(json.dumps(body))

    assert detail.cover_urls == []
    assert [s.offset for s in detail.snapshots("dots")] == [1.5]
    assert detail.snapshots("sample") == []
    assert detail.duration == 3.5
    covers = {"asset_id": "a1", "base_info": {"cover_info_array": [{"cover_url": None}]}}
    assert AssetDetail.model_validate(covers).cover_urls == []


def test_an_event_with_null_snapshot_lists_is_an_event() -> None:
    body = {
        "event_type": "thumbnailComplete",
        "thumbnail_info": {"asset_id": "a1", "status": "SUCCEED", "dots": None, "sample": None},
    }

    event = decode(json.dumps(body).encode())

    assert event.asset_id == "a1"


# 6. no snapshot past the end of the video -----------------------------------------------


@pytest.mark.parametrize(("duration", "dots"), [(3, [1]), (0.5, [0]), (60, [1, 5, 10])])
async def test_requested_snapshots_lie_inside_the_video(
    vod: Vod, duration: float, dots: list[int]
) -> None:
    asset = vod.state.add_asset("a1", duration=duration)
    vod.state.task_delay = 30

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Retry("requested snapshots", after=60.0)
    assert asset.tasks[0]["thumbnail_para"]["dots"] == dots


# 7. Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "wait"),
    [("7", 7.0), ("0.5", 0.5), ("100000", 600.0), ("0", None), ("junk", None), (None, None)],
)
async def test_a_throttled_answer_waits_what_vod_says_else_2_to_5_s(
    vod: Vod, header: str | None, wait: float | None
) -> None:
    vod.state.add_asset("a1")
    vod.state.quotas.queries_per_minute = 0
    vod.state.faults.retry_after = header

    with pytest.raises(VodThrottled) as caught:
        await vod.client.show_asset_detail("a1")

    if wait is None:
        assert 2.0 <= caught.value.retry_after <= 5.0
    else:
        assert caught.value.retry_after == wait


async def test_a_retry_after_date_is_read_as_seconds_from_now(vod: Vod) -> None:
    vod.state.add_asset("a1")
    vod.state.quotas.queries_per_minute = 0
    later = datetime.fromtimestamp(vod.clock.wall() + 30, UTC)
    vod.state.faults.retry_after = format_datetime(later, usegmt=True)

    with pytest.raises(VodThrottled) as caught:
        await vod.client.show_asset_detail("a1")

    assert caught.value.retry_after == pytest.approx(30, abs=1)


async def test_a_retry_after_date_in_an_unknown_zone_is_read_as_utc(
    vod: Vod, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Etc/GMT+12")  # a machine twelve hours behind UTC
    time.tzset()
    vod.state.add_asset("a1")
    vod.state.quotas.queries_per_minute = 0
    later = datetime.fromtimestamp(vod.clock.wall() + 30, UTC)
    vod.state.faults.retry_after = format_datetime(later).replace("+0000", "-0000")

    try:
        with pytest.raises(VodThrottled) as caught:
            await vod.client.show_asset_detail("a1")
    finally:
        monkeypatch.undo()
        time.tzset()

    assert caught.value.retry_after == pytest.approx(30, abs=1)


# a cover counts once VOD shows it -------------------------------------------------------


async def test_a_fallback_cover_is_verified_only_once_vod_shows_it(vod: Vod) -> None:
    vod.state.add_asset("a1", snapshots=[5])
    vod.state.cover_delay = 180  # VOD shows a new cover after minutes

    set_ = await vod.call(fallback_cover, cover_failed("a1"))
    vod.clock.advance(60)
    early = await vod.call(fallback_cover, cover_failed("a1"), attempt=2)
    vod.clock.advance(180)
    shown = await vod.call(fallback_cover, cover_failed("a1"), attempt=3)

    assert set_ == early == Retry("waiting for the new cover to show", after=240.0)
    assert shown == DONE
    assert (vod.notes["cover"], vod.notes["cover_source"]) == ("verified", "fallback")
    assert vod.notes["verified_after_s"] == pytest.approx(240, abs=1)
    assert vod.state.count("update_cover") == 1


async def test_a_cover_that_never_shows_is_set_once_more_then_failed(vod: Vod) -> None:
    vod.state.add_asset("a1", snapshots=[5])
    vod.state.cover_delay = 10**9

    outcomes = [await vod.call(fallback_cover, cover_failed("a1"), attempt=n) for n in range(1, 6)]

    assert [type(o).__name__ for o in outcomes] == ["Retry"] * 4 + ["Failed"]
    assert vod.state.count("update_cover") == 2  # the first set, and once more
    last = outcomes[-1]
    assert isinstance(last, Failed)
    assert "never showed after 2 checks, set 2 times" in last.reason
