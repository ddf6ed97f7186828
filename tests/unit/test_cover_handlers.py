"""consumer.handlers.covers against the VOD simulator on a localhost port: real HTTP, real
signing, real snapshot tasks (with a short task delay)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import structlog

from consumer.config.vod import CoverSettings
from consumer.devtools.simulator.app import run_simulator
from consumer.events import Event, decode
from consumer.handlers import Clients, Context, Handler, RecordMeta
from consumer.handlers.covers import fallback_cover, fallback_on_thumbnails, regenerate_head_frame
from consumer.outcomes import DONE, Failed, Handover, Outcome, Retry, Skipped
from consumer.testing.vodsim import SimAsset, SimState
from consumer.vod.client import VodClient
from consumer.vod.errors import VodTransientError
from consumer.vod.models import Snapshot, ThumbnailParams, ThumbnailStatus

PROJECT = "proj-1"
AK, SK = "AK-TEST", "sk-very-secret-value"
META = RecordMeta("vod-cover-events", 0, 7, b"a1", 1_700_000_000)
SETTINGS = CoverSettings(
    regenerate_check_delay=120.0,
    regenerate_attempts=2,
    snapshot_preference=("sample", "dots", "quantity"),
    min_offset_seconds=1.0,
    snapshot_offsets=(1, 5, 10),
    snapshot_retry_after=60.0,
)


@dataclass
class Harness:
    """Calls a handler as the pipeline would: one notes dict per record, shared by the
    route's handlers and their retries."""

    state: SimState
    clients: Clients
    notes: dict[str, Any] = field(default_factory=dict)
    #: What the record's handlers keep between calls (it rides the retry tiers).
    memo: dict[str, Any] = field(default_factory=dict)

    async def call(
        self, handler: Handler, event: Event, attempt: int = 1, last_try: bool = False
    ) -> Outcome:
        ctx = Context(
            structlog.get_logger(),
            {},
            META,
            self.clients,
            self.notes,
            attempt,
            last_try,
            getattr(handler, "__name__", "handler"),
            self.memo,
        )
        return await handler(event, ctx)

    def writes(self) -> int:
        return self.state.count("update_cover") + self.state.count("create_process_task")

    def url(self, asset_id: str, kind: Any, offset: int) -> str:
        return self.state.snapshot_url(asset_id, kind, offset)


@pytest.fixture
async def vod() -> AsyncIterator[Harness]:
    state = SimState(project_id=PROJECT, keys={AK: SK}, rng=random.Random(7), task_delay=0.01)
    server = await run_simulator("127.0.0.1", 0, state)
    async with aiohttp.ClientSession() as session:
        client = VodClient(
            session, endpoint=server.url, project_id=PROJECT, access_key=AK, secret_key=SK
        )
        yield Harness(state, Clients(http=session, vod=client, covers=SETTINGS))
    await server.stop()


def cover_failed(asset_id: str) -> Event:
    info = {"status": "FAILED", "title": "XC1", "asset_id": asset_id, "error_code": "VOD.10013"}
    body = {"event_type": "coverComplete", "cover_info": info | {"cover_type": "HEAD_FRAME_COVER"}}
    return decode(json.dumps(body).encode())


def thumbnails_done(asset_id: str, status: str = "SUCCEED") -> Event:
    info: dict[str, Any] = {"asset_id": asset_id, "status": status, "sample": [], "dots": []}
    if status != "SUCCEED":
        info |= {"error_code": "VOD.10104", "error_msg": "task failed"}
    return decode(json.dumps({"event_type": "thumbnailComplete", "thumbnail_info": info}).encode())


def snaps(vod: Harness, asset: SimAsset, kind: Any, offsets: list[int]) -> None:
    asset.snapshots[kind] = [
        Snapshot(offset=o, url=vod.url(asset.asset_id, kind, o)) for o in offsets
    ]
    asset.thumbnail_status = ThumbnailStatus.THUMBNAIL_SUCCEED


# -- never clobber a cover ---------------------------------------------------------------


@pytest.mark.parametrize("handler", [regenerate_head_frame, fallback_cover])
async def test_an_asset_with_a_cover_is_left_untouched(vod: Harness, handler: Handler) -> None:
    asset = vod.state.add_asset("a1", cover="https://cdn/a1/cover.jpg", snapshots=[0, 5])

    outcome = await vod.call(handler, cover_failed("a1"))

    assert outcome == Skipped("cover present")
    assert vod.writes() == 0
    assert (asset.cover_url, asset.cover_source) == ("https://cdn/a1/cover.jpg", None)


class ActAfterFirstRead(Counter[tuple[str, str]]):
    """The simulator's call counter, used as a hook: ``act`` runs once the first
    ShowAssetDetail has been answered, i.e. between a handler's first and second read."""

    def __init__(self, act: Callable[[], None]) -> None:
        super().__init__()
        self._act: Callable[[], None] | None = act

    def __setitem__(self, key: tuple[str, str], value: int) -> None:
        super().__setitem__(key, value)
        if key[0] == "show_asset_detail" and self._act is not None:
            act, self._act = self._act, None
            act()


async def test_fallback_does_not_write_when_a_cover_appears_before_the_write(
    vod: Harness,
) -> None:
    asset = vod.state.add_asset("a1", snapshots=[0, 5])

    def operator_sets_a_cover() -> None:
        asset.cover_url = "https://cdn/a1/operator-cover.jpg"

    vod.state.calls = ActAfterFirstRead(operator_sets_a_cover)

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Skipped("cover present")
    assert vod.state.count("show_asset_detail") == 2
    assert vod.state.count("update_cover") == 0
    assert asset.cover_url == "https://cdn/a1/operator-cover.jpg"


# -- regenerate_head_frame ---------------------------------------------------------------


async def test_regenerate_starts_a_head_frame_task_and_checks_back_later(vod: Harness) -> None:
    asset = vod.state.add_asset("a1")
    vod.state.task_delay = 30

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"))

    assert outcome == Retry("waiting for the regenerated cover", after=120.0)
    assert vod.state.count("create_process_task", "ok") == 1
    assert asset.thumbnail_status == ThumbnailStatus.THUMBNAILING
    # A single-snapshot task gets no id back from VOD: started all the same.
    assert (vod.notes["snapshot_task"], vod.notes["snapshot_task_started"]) == (None, True)
    assert vod.notes["vod_billed_tasks"] == 1


async def test_regenerate_task_makes_the_frame_at_second_0_the_cover(vod: Harness) -> None:
    asset = vod.state.add_asset("a1", snapshots=[5])

    await vod.call(regenerate_head_frame, cover_failed("a1"))
    await vod.state.settle()

    assert [s.offset for s in asset.snapshots["dots"]] == [0]
    assert asset.cover_source == vod.url("a1", "dots", 0)


async def test_regenerate_is_done_when_the_check_finds_its_cover(vod: Harness) -> None:
    vod.state.add_asset("a1")
    await vod.call(regenerate_head_frame, cover_failed("a1"))
    await vod.state.settle()

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=2)

    assert outcome == DONE
    assert (vod.notes["cover"], vod.notes["cover_source"]) == ("verified", "regenerated")
    assert vod.notes["verified_after_s"] >= 0
    assert vod.state.count("create_process_task") == 1


async def test_regenerate_waits_for_a_running_task_without_starting_another(
    vod: Harness,
) -> None:
    vod.state.add_asset("a1")
    vod.state.task_delay = 30
    await vod.call(regenerate_head_frame, cover_failed("a1"))

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=2)

    assert outcome == Retry("waiting for the regenerated cover", after=120.0)
    # A first task runs unseen (no thumbnail_info yet): the check does not even ask again.
    assert vod.state.count("create_process_task") == 1


async def test_regenerate_waits_for_a_finished_task_whose_cover_does_not_show_yet(
    vod: Harness,
) -> None:
    asset = vod.state.add_asset("a1")
    await vod.call(regenerate_head_frame, cover_failed("a1"))
    await vod.state.settle()
    asset.cover_url = None  # VOD takes minutes to show a new cover

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=2)

    assert isinstance(outcome, Retry)
    assert vod.state.count("create_process_task") == 1


async def test_regenerate_hands_over_after_its_last_check(vod: Harness) -> None:
    vod.state.add_asset("a1")
    vod.state.task_delay = 30
    await vod.call(regenerate_head_frame, cover_failed("a1"))
    first = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=2)

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=3)

    assert isinstance(first, Retry)
    assert outcome == Handover("regeneration produced no cover after 2 checks")
    assert vod.state.count("create_process_task") == 1


async def test_regenerate_tries_its_own_task_despite_an_earlier_failed_one(vod: Harness) -> None:
    vod.state.add_asset("a1", thumbnail_status=ThumbnailStatus.THUMBNAIL_FAILED)

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"))

    assert isinstance(outcome, Retry)
    assert vod.state.count("create_process_task", "ok") == 1


async def test_regenerate_starts_the_task_a_failed_first_call_did_not(vod: Harness) -> None:
    # Attempt 2 after a transient error in attempt 1: the asset shows no task of ours.
    vod.state.add_asset("a1")

    outcome = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=2)

    assert isinstance(outcome, Retry)
    assert vod.state.count("create_process_task", "ok") == 1


async def test_a_failed_regeneration_hands_over_to_the_fallback_which_sets_the_cover(
    vod: Harness,
) -> None:
    asset = vod.state.add_asset("a1", snapshots=[0, 9, 4])
    snaps(vod, asset, "dots", [2])
    vod.state.task_failure_rate = 1.0
    await vod.call(regenerate_head_frame, cover_failed("a1"))
    await vod.state.settle()

    handed = await vod.call(regenerate_head_frame, cover_failed("a1"), attempt=2)
    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert handed == Handover("regeneration produced no cover: the snapshot task failed")
    assert outcome == Retry("waiting for the new cover to show", after=240.0)
    assert asset.cover_source == vod.url("a1", "sample", 4)  # sample first, 0 is too early
    ops = [call["op"] for call in vod.notes["vod_calls"]]
    regenerate = ["show_asset_detail", "list_thumbnail_tasks", "create_process_task"]
    check = ["show_asset_detail"]
    fallback = ["show_asset_detail", "show_asset_detail", "update_cover"]
    assert ops == [*regenerate, *check, *fallback], ops
    assert (vod.notes["vod_queries"], vod.notes["vod_writes"]) == (5, 2)
    assert vod.notes["vod_billed_tasks"] == 1


# -- fallback_cover ----------------------------------------------------------------------


async def test_fallback_takes_the_next_kind_when_no_sample_is_late_enough(vod: Harness) -> None:
    asset = vod.state.add_asset("a1", snapshots=[0])
    snaps(vod, asset, "dots", [0, 8, 3])
    snaps(vod, asset, "quantity", [1])

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Retry("waiting for the new cover to show", after=240.0)
    assert asset.cover_source == vod.url("a1", "dots", 3)
    cover = {k: vod.notes[k] for k in ("cover", "cover_kind", "cover_offset", "cover_url")}
    assert cover == {
        "cover": "set",
        "cover_kind": "dots",
        "cover_offset": 3,
        "cover_url": vod.url("a1", "dots", 3),
    }


async def test_fallback_trims_the_snapshot_url_and_skips_blank_ones(vod: Harness) -> None:
    asset = vod.state.add_asset("a1")
    clean = vod.url("a1", "sample", 5)
    asset.snapshots["sample"] = [
        Snapshot(offset=2, url="   "),
        Snapshot(offset=5, url=f"  {clean}\n"),
    ]
    # The simulator accepts only exact snapshot URLs: it knows the clean one as well.
    asset.snapshots["quantity"] = [Snapshot(offset=5, url=clean)]
    asset.thumbnail_status = ThumbnailStatus.THUMBNAIL_SUCCEED
    asset.thumbnail_shown = True

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert isinstance(outcome, Retry)
    assert (asset.cover_source, vod.notes["cover_kind"]) == (clean, "sample")
    assert vod.notes["cover_url"] == clean


async def test_fallback_waits_for_a_running_snapshot_task(vod: Harness) -> None:
    vod.state.add_asset("a1", thumbnail_status=ThumbnailStatus.THUMBNAILING)

    outcome = await vod.call(fallback_cover, cover_failed("a1"))

    assert outcome == Retry("waiting for a running snapshot task", after=60.0)
    assert vod.writes() == 0


async def test_fallback_without_snapshots_requests_them_and_the_asset_gets_a_cover(
    vod: Harness,
) -> None:
    asset = vod.state.add_asset("a1", snapshots=[0])  # only a too-early one

    first = await vod.call(fallback_cover, cover_failed("a1"))
    await vod.state.settle()
    second = await vod.call(fallback_cover, cover_failed("a1"), attempt=2)

    assert first == Retry("requested snapshots", after=60.0)
    assert [s.offset for s in asset.snapshots["dots"]] == [1, 5, 10]
    # The task set the cover itself, at the snapshot the fallback would have chosen.
    assert second == Skipped("cover present")
    assert asset.cover_source == vod.url("a1", "dots", 1)
    assert vod.state.count("update_cover") == 0


async def test_on_its_last_try_fallback_says_why_instead_of_requesting_snapshots(
    vod: Harness,
) -> None:
    vod.state.add_asset("a1", snapshots=[0])  # only a too-early one

    outcome = await vod.call(fallback_cover, cover_failed("a1"), attempt=9, last_try=True)

    assert outcome == Failed("no usable snapshot, and no retry left to wait for a snapshot task")
    assert vod.state.count("create_process_task") == 0


async def test_requested_snapshots_do_not_make_a_too_early_frame_the_cover(
    vod: Harness,
) -> None:
    asset = vod.state.add_asset("a1")
    vod.clients.covers = SETTINGS.model_copy(update={"snapshot_offsets": (7, 0)})

    await vod.call(fallback_cover, cover_failed("a1"))
    await vod.state.settle()

    assert asset.cover_source == vod.url("a1", "dots", 7)


@pytest.mark.parametrize("handler", [regenerate_head_frame, fallback_cover])
async def test_a_task_running_unseen_is_waited_for_not_failed(
    vod: Harness, handler: Handler
) -> None:
    asset = vod.state.add_asset("a1")
    vod.state.task_delay = 30
    vod.state.start_task(asset, ThumbnailParams(type="dots", dots=[3]))
    asset.thumbnail_status = None  # as documented: no thumbnail_info before a success

    outcome = await vod.call(handler, cover_failed("a1"))

    assert isinstance(outcome, Retry)
    assert outcome.after == (120.0 if handler is regenerate_head_frame else 60.0)
    assert vod.state.count("create_process_task", "VOD.10080") == 1
    assert vod.notes["snapshot_task"] is None


# -- fallback_on_thumbnails --------------------------------------------------------------


async def test_a_failed_thumbnail_event_is_skipped_without_calling_vod(vod: Harness) -> None:
    vod.state.add_asset("a1")

    outcome = await vod.call(fallback_on_thumbnails, thumbnails_done("a1", "FAILED"))

    assert outcome == Skipped("snapshot task FAILED: VOD.10104 task failed")
    assert sum(vod.state.calls.values()) == 0


async def test_new_snapshots_give_a_coverless_asset_its_cover_at_once(vod: Harness) -> None:
    asset = vod.state.add_asset("a1", snapshots=[0, 6, 12])

    outcome = await vod.call(fallback_on_thumbnails, thumbnails_done("a1"))

    assert isinstance(outcome, Retry)
    assert asset.cover_source == vod.url("a1", "sample", 6)


async def test_new_snapshots_leave_an_existing_cover_alone(vod: Harness) -> None:
    asset = vod.state.add_asset("a1", cover="https://cdn/a1/cover.jpg", snapshots=[6])

    outcome = await vod.call(fallback_on_thumbnails, thumbnails_done("a1"))

    assert outcome == Skipped("cover present")
    assert (vod.writes(), asset.cover_source) == (0, None)


# -- errors and the outcome line ---------------------------------------------------------


@pytest.mark.parametrize("handler", [regenerate_head_frame, fallback_cover, fallback_on_thumbnails])
async def test_a_deleted_asset_fails_with_vods_code(vod: Harness, handler: Handler) -> None:
    event = thumbnails_done("gone") if handler is fallback_on_thumbnails else cover_failed("gone")

    outcome = await vod.call(handler, event)

    assert isinstance(outcome, Failed)
    assert "VOD.10062" in outcome.reason
    assert outcome.error == "VodPermanentError"
    [call] = vod.notes["vod_calls"]
    assert (call["status"], call["error_code"]) == (400, "VOD.10062")


async def test_the_outcome_line_lists_each_vod_call_with_its_request_id(vod: Harness) -> None:
    vod.state.add_asset("a1", snapshots=[5])

    await vod.call(fallback_cover, cover_failed("a1"))

    calls = vod.notes["vod_calls"]
    assert [(c["op"], c["status"], c["error_code"]) for c in calls] == [
        ("show_asset_detail", 200, None),
        ("show_asset_detail", 200, None),
        ("update_cover", 204, None),
    ]
    assert len({c["request_id"] for c in calls}) == 3
    assert all(c["request_id"] and c["ms"] >= 0 for c in calls)
    assert SK not in repr(vod.notes)


async def test_the_calls_are_on_the_outcome_line_when_the_handler_raises(vod: Harness) -> None:
    vod.state.add_asset("a1")
    vod.state.faults.error_rate = 1.0

    with pytest.raises(VodTransientError):
        await vod.call(regenerate_head_frame, cover_failed("a1"))

    [call] = vod.notes["vod_calls"]
    assert (call["op"], call["status"], call["error_code"]) == (
        "show_asset_detail",
        500,
        "VOD.10051",
    )
    assert call["request_id"]


async def test_a_regenerations_own_snapshots_do_not_clobber_the_cover_it_set(
    vod: Harness,
) -> None:
    # The head-frame task made its frame the cover; VOD shows it only minutes later.
    asset = vod.state.add_asset("a1", snapshots=[6])
    body = {
        "event_type": "thumbnailComplete",
        "thumbnail_info": {
            "asset_id": "a1",
            "status": "SUCCEED",
            "dots": [{"offset": 0, "url": vod.url("a1", "dots", 0)}],
        },
    }

    outcome = await vod.call(fallback_on_thumbnails, decode(json.dumps(body).encode()))

    assert outcome == Skipped("a regenerated first-frame cover is on its way")
    assert (vod.writes(), asset.cover_source) == (0, None)
