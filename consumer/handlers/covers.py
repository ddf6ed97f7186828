"""Built-in cover handlers: give an asset a cover when VOD's first-frame step failed.

regenerate_head_frame   coverComplete FAILED: ask VOD for a new first-frame cover (a
                        snapshot task at second 0 that becomes the cover), check on it
                        through the retry tiers, hand over when it brings no cover.
fallback_cover          set the cover from an existing snapshot (kinds in order of
                        preference, no early black frames); ask for snapshots if none.
fallback_on_thumbnails  thumbnailComplete SUCCEED: the same, as soon as snapshots exist.

None of them ever replaces a cover that is already there. Every VOD call goes on the
outcome line (``vod_calls``). Permanent VOD errors (unknown asset, invalid parameter)
become ``Failed``; transient, retry-later and systemic ones propagate so the pipeline
retries them or the VOD circuit opens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumer.config.vod import CoverSettings
from consumer.events import Event, ThumbnailComplete
from consumer.handlers.context import Context
from consumer.outcomes import DONE, Failed, Handover, Outcome, Retry, Skipped
from consumer.vod.api import VodApi
from consumer.vod.client import VodCall
from consumer.vod.errors import VodPermanentError, VodRetryLater
from consumer.vod.models import (
    AssetDetail,
    ProcessTaskRequest,
    Snapshot,
    SnapshotKind,
    ThumbnailParams,
    ThumbnailStatus,
)

__all__ = ["fallback_cover", "fallback_on_thumbnails", "regenerate_head_frame"]

_COVER_PRESENT = "cover present"


@dataclass(slots=True)
class _Asset:
    """The VOD calls about one asset; each one is recorded in ``calls``, failed or not."""

    api: VodApi
    asset_id: str
    calls: list[VodCall] = field(default_factory=list)

    async def detail(self) -> AssetDetail:
        return await self.api.show_asset_detail(self.asset_id, calls=self.calls)

    async def set_cover(self, url: str) -> None:
        await self.api.update_cover(url, calls=self.calls)

    async def take_snapshots(
        self, offsets: Sequence[int], cover_position: int | None
    ) -> str | None:
        """The new task's id, or None when VOD cannot start one yet (VOD.10080: a task is
        still running). The docs say ``thumbnail_info`` is absent until a task succeeded,
        so a first task may run unseen: that is a reason to wait, not an error."""
        thumbnail = ThumbnailParams(type="dots", dots=list(offsets), cover_position=cover_position)
        request = ProcessTaskRequest(asset_id=self.asset_id, thumbnail=thumbnail)
        try:
            answer = await self.api.create_process_task(request, calls=self.calls)
        except VodRetryLater:
            return None
        return answer.thumbnail_task_id


_Body = Callable[[_Asset, Context], Awaitable[Outcome]]


async def regenerate_head_frame(event: Event, ctx: Context) -> Outcome:
    return await _with_asset(event, ctx, _regenerate)


async def fallback_cover(event: Event, ctx: Context) -> Outcome:
    return await _with_asset(event, ctx, _fallback)


async def fallback_on_thumbnails(event: Event, ctx: Context) -> Outcome:
    if not isinstance(event, ThumbnailComplete):
        return Skipped(f"not a thumbnailComplete event: {event.event_type}")
    info = event.thumbnail_info
    if info.status != "SUCCEED":
        detail = " ".join(text for text in (info.error_code, info.error_msg) if text)
        return Skipped(f"snapshot task {info.status}" + (f": {detail}" if detail else ""))
    # The event's snapshot list is not trusted for the decision: the asset's current
    # state (a cover set meanwhile, a newer task) is what must not be clobbered.
    return await _with_asset(event, ctx, _fallback)


async def _with_asset(event: Event, ctx: Context, body: _Body) -> Outcome:
    """Run ``body`` for the event's asset; permanent VOD errors become ``Failed`` (so
    they are dead-lettered at once instead of retried as unexpected), and the calls go
    on the outcome line however the body ends."""
    asset_id, api = event.asset_id, ctx.clients.vod
    if asset_id is None:
        return Failed("event carries no asset_id")
    if api is None:
        return Failed("no VOD endpoint configured (vod.endpoint)")
    asset = _Asset(api, asset_id)
    try:
        return await body(asset, ctx)
    except VodPermanentError as exc:
        operation = asset.calls[-1].operation if asset.calls else "vod"
        return Failed(f"{operation}: {exc}", type(exc).__name__)
    finally:
        _annotate_calls(ctx, asset.calls)


def _annotate_calls(ctx: Context, calls: list[VodCall]) -> None:
    # Appended to what earlier handlers and quick retries of this record noted: the
    # outcome line tells every call the record cost, not only the last handler's.
    earlier: list[dict[str, Any]] = ctx.notes.get("vod_calls", [])
    made = [
        {
            "op": call.operation,
            "status": call.status,
            "error_code": call.error_code,
            "request_id": call.request_id,
            "ms": call.duration_ms,
            "attempt": ctx.attempt,
        }
        for call in calls
    ]
    ctx.annotate(vod_calls=[*earlier, *made])


async def _regenerate(asset: _Asset, ctx: Context) -> Outcome:
    settings = ctx.clients.covers
    detail = await asset.detail()
    status = _thumbnail_status(detail)
    # Calls after the first are checks. A quick retry of a transient failure counts as
    # one too, so what to do next is read from the asset, the count only bounds it.
    checks = ctx.attempt - 1
    ours = checks > 0 and _has_head_frame_snapshot(detail)
    if detail.cover_urls:
        if ours:
            ctx.annotate(cover="regenerated", cover_url=detail.cover_urls[0])
            return DONE
        return Skipped(_COVER_PRESENT)
    if checks > 0 and status == ThumbnailStatus.THUMBNAIL_FAILED:
        return Handover("regeneration produced no cover: the snapshot task failed")
    if checks >= settings.regenerate_attempts:
        return Handover(f"regeneration produced no cover after {checks} checks")
    # A running task (ours or another's) may still set the cover; a finished one of ours
    # may not show yet (VOD takes minutes): wait rather than pay for another task. An
    # earlier failed task on the first call is not ours: it is worth one try of our own.
    if status != ThumbnailStatus.THUMBNAILING and not ours:
        ctx.annotate(snapshot_task=await asset.take_snapshots([0], cover_position=1))
    return Retry("waiting for the regenerated cover", after=settings.regenerate_check_delay)


async def _fallback(asset: _Asset, ctx: Context) -> Outcome:
    settings = ctx.clients.covers
    detail = await asset.detail()
    if detail.cover_urls:
        return Skipped(_COVER_PRESENT)
    if _thumbnail_status(detail) == ThumbnailStatus.THUMBNAILING:
        # The running task may set a cover itself, or bring better snapshots.
        return Retry("waiting for a running snapshot task", after=settings.snapshot_retry_after)
    choice = _choose_snapshot(detail, settings)
    if choice is None and ctx.last_try:
        # A task started now could never be checked: say why instead of a blind request.
        return Failed("no usable snapshot, and no retry left to wait for a snapshot task")
    if choice is None:
        offsets = sorted(set(settings.snapshot_offsets))
        task_id = await asset.take_snapshots(offsets, _cover_position(offsets, settings))
        ctx.annotate(snapshot_task=task_id)
        reason = "requested snapshots" if task_id else "waiting for a running snapshot task"
        return Retry(reason, after=settings.snapshot_retry_after)
    # Another actor (an operator, VOD, a task) may have set a cover since the first read.
    if (await asset.detail()).cover_urls:
        return Skipped(_COVER_PRESENT)
    kind, snapshot = choice
    url = snapshot.url.strip()
    await asset.set_cover(url)
    ctx.annotate(cover="fallback", cover_kind=kind, cover_offset=snapshot.offset, cover_url=url)
    return DONE


def _thumbnail_status(detail: AssetDetail) -> str | None:
    return detail.thumbnail_info.thumbnail_status if detail.thumbnail_info else None


def _has_head_frame_snapshot(detail: AssetDetail) -> bool:
    """Whether the asset shows what our regeneration task makes: a dots snapshot at 0."""
    return any(snapshot.offset == 0 for snapshot in detail.snapshots("dots"))


def _choose_snapshot(
    detail: AssetDetail, settings: CoverSettings
) -> tuple[SnapshotKind, Snapshot] | None:
    """The earliest usable snapshot of the first preferred kind that has one."""
    for kind in settings.snapshot_preference:
        usable = [
            snapshot
            for snapshot in detail.snapshots(kind)
            if snapshot.offset >= settings.min_offset_seconds and snapshot.url.strip()
        ]
        if usable:
            return kind, min(usable, key=lambda snapshot: snapshot.offset)
    return None


def _cover_position(offsets: Sequence[int], settings: CoverSettings) -> int | None:
    """Let the requested task set the cover the fallback would choose: the first offset
    past ``min_offset_seconds`` (1-based). None leaves VOD's default (the first)."""
    for position, offset in enumerate(offsets, start=1):
        if offset >= settings.min_offset_seconds:
            return position
    return None
