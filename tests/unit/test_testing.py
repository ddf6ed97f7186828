"""consumer.testing.call_handler: a handler run as the pipeline runs it, against an
in-memory VOD that answers as the simulator does."""

from __future__ import annotations

import pytest

from consumer import DONE, Context, Event, Failed, Outcome, Retry, Skipped
from consumer.handlers.covers import fallback_cover, regenerate_head_frame
from consumer.testing import Quotas, SimState, call_handler
from consumer.vod.errors import VodThrottled
from tests.fakes import cover_event


async def test_the_fallback_sets_a_snapshot_as_cover_and_verifies_it_on_the_next_try() -> None:
    vod = SimState()
    vod.add_asset("a1", snapshots=[0, 10])

    result = await call_handler(fallback_cover, cover_event("a1"), vod=vod)
    check = await call_handler(fallback_cover, cover_event("a1"), vod=vod, memo=result.memo)

    assert isinstance(result.outcome, Retry)
    assert [call.operation for call in result.vod_calls] == [
        "show_asset_detail",
        "show_asset_detail",
        "update_cover",
    ]
    assert all(call.status in (200, 204) and call.request_id for call in result.vod_calls)
    assert result.notes["cover"] == "set"
    assert vod.assets["a1"].cover_source == vod.snapshot_url("a1", "sample", 10)
    assert check.outcome == DONE
    assert (check.notes["cover"], check.notes["cover_source"]) == ("verified", "fallback")
    assert (check.notes["vod_queries"], check.notes["vod_writes"]) == (3, 1)


async def test_regeneration_asks_once_then_finds_its_cover_on_the_check() -> None:
    vod = SimState(task_delay=0.0)
    vod.add_asset("a1")

    first = await call_handler(regenerate_head_frame, cover_event("a1"), vod=vod)
    await vod.settle()
    check = await call_handler(
        regenerate_head_frame, cover_event("a1"), vod=vod, attempt=2, memo=first.memo
    )

    assert isinstance(first.outcome, Retry)
    assert vod.count("create_process_task", "ok") == 1
    assert check.outcome == DONE
    assert (check.notes["cover"], check.notes["cover_source"]) == ("verified", "regenerated")
    assert check.notes["vod_billed_tasks"] == 1


async def test_an_unknown_asset_fails_permanently_as_against_real_vod() -> None:
    result = await call_handler(fallback_cover, cover_event("nope"), vod=SimState())

    assert isinstance(result.outcome, Failed)
    assert result.outcome.error == "VodPermanentError"
    assert [(c.status, c.error_code) for c in result.vod_calls] == [(400, "VOD.10062")]


async def test_the_in_memory_vod_throttles_past_its_quota() -> None:
    vod = SimState(quotas=Quotas(writes_per_minute=100, queries_per_minute=2))
    vod.add_asset("a1", snapshots=[10])
    await call_handler(fallback_cover, cover_event("a1"), vod=vod)

    with pytest.raises(VodThrottled):
        await call_handler(fallback_cover, cover_event("a1"), vod=vod)
    assert vod.throttled >= 1


async def test_without_vod_a_handler_sees_none_and_the_event_may_be_a_mapping() -> None:
    seen: list[object] = []

    async def mine(event: Event, ctx: Context) -> Outcome:
        seen.append(ctx.clients.vod)
        ctx.annotate(asset=event.asset_id)
        return Skipped("nothing to do")

    body = {
        "event_type": "thumbnailComplete",
        "thumbnail_info": {"asset_id": "a9", "status": "SUCCEED"},
    }
    result = await call_handler(mine, body)

    assert seen == [None]
    assert result.outcome == Skipped("nothing to do")
    assert result.notes == {"asset": "a9"}
    assert result.vod_calls == []
