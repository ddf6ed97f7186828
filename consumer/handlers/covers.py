"""Built-in cover handlers: give an asset a cover when VOD's first-frame step failed.

regenerate_head_frame   coverComplete FAILED: ask VOD once for a new first-frame cover (a
                        snapshot task at second 0 that becomes the cover), check on it
                        through the retry tiers, hand over when it brings no cover.
fallback_cover          set the cover from an existing snapshot (kinds in order of
                        preference, no early black frames, none past the video's end);
                        ask for snapshots if none; then check back until VOD shows it.
fallback_on_thumbnails  thumbnailComplete SUCCEED: the same, as soon as snapshots exist.

None of them ever replaces a cover that is already there. A cover is reported
``cover="verified"`` only once the asset's detail shows it (VOD takes 3-5 minutes), with
``cover_source`` and ``verified_after_s`` (from the event's first sight); one that never
shows is set once more, then the event is dead-lettered saying so. Every outcome line
carries the record's VOD cost so far (``vod_queries``, ``vod_writes``,
``vod_billed_tasks``) and this call's ``vod_calls``. What a handler must remember
between calls (a task asked for, a cover set) is in ``ctx.memo``, which travels with
the record through the retry tiers. Permanent VOD errors become ``Failed``; transient,
retry-later and systemic ones propagate so the pipeline retries or the circuit opens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from consumer import metrics
from consumer.config.vod import CoverSettings, SnapshotKind
from consumer.events import Event, ThumbnailComplete
from consumer.handlers.context import Context
from consumer.handlers.vodcalls import AssetCalls
from consumer.outcomes import DONE, Failed, Handover, Outcome, Retry, Skipped
from consumer.vod.errors import VodPermanentError
from consumer.vod.models import AssetDetail, Snapshot, ThumbnailStatus

__all__ = ["fallback_cover", "fallback_on_thumbnails", "regenerate_head_frame"]

_COVER_PRESENT = "cover present"
_Body = Callable[[AssetCalls, Context], Awaitable[Outcome]]


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
    if [s.offset for s in info.dots] == [0] and not info.sample and not info.quantity:
        # A regeneration's task: it made its frame the cover, which VOD shows only in a
        # few minutes. Setting another now would clobber it; regeneration checks on it.
        return Skipped("a regenerated first-frame cover is on its way")
    # The event's snapshot list is not trusted for the decision: the asset's current
    # state (a cover set meanwhile, a newer task) is what must not be clobbered.
    return await _with_asset(event, ctx, _fallback)


async def _with_asset(event: Event, ctx: Context, body: _Body) -> Outcome:
    """Run ``body`` for the event's asset; permanent VOD errors become ``Failed`` (so
    they are dead-lettered at once instead of retried as unexpected), and the calls and
    their cost go on the outcome line however the body ends."""
    asset_id, api = event.asset_id, ctx.clients.vod
    if asset_id is None:
        return Failed("event carries no asset_id")
    if api is None:
        return Failed("no VOD endpoint configured (vod.endpoint)")
    asset = AssetCalls(api, asset_id)
    try:
        return await body(asset, ctx)
    except VodPermanentError as exc:
        operation = asset.calls[-1].operation if asset.calls else "vod"
        return Failed(f"{operation}: {exc}", type(exc).__name__)
    finally:
        ctx.annotate(**asset.account(ctx.memo, ctx.handler), vod_calls=_calls(ctx, asset))


def _calls(ctx: Context, asset: AssetCalls) -> list[dict[str, Any]]:
    # Appended to what earlier handlers and quick retries of this record noted: the
    # outcome line tells every call the record made in this process.
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
        for call in asset.calls
    ]
    return [*earlier, *made]


# -- regeneration -------------------------------------------------------------------------


async def _regenerate(asset: AssetCalls, ctx: Context) -> Outcome:
    settings = ctx.clients.covers
    detail = await asset.detail()
    asked: dict[str, Any] | None = ctx.memo.get("regenerate")
    if detail.cover_urls:
        if asked is not None:
            return _verified(ctx, "regenerated", detail)
        return Skipped(_COVER_PRESENT)
    status = _thumbnail_status(detail)
    if asked is None:
        # One task per regeneration, ever: not while one runs, not when one was asked for
        # already (a duplicate event, an earlier attempt), not when no check could follow.
        if status == ThumbnailStatus.THUMBNAILING or await asset.head_frame_task_seen():
            ctx.memo["regenerate"] = {"checks": 0, "task": None}
        elif ctx.last_try:
            return Handover("no retry left to check on a regenerated cover")
        else:
            started = await asset.start_task([0], cover_position=1)
            ctx.memo["regenerate"] = {"checks": 0, "task": started.task_id}
            ctx.annotate(snapshot_task=started.task_id, snapshot_task_started=started.started)
        return Retry("waiting for the regenerated cover", after=settings.regenerate_check_delay)
    asked["checks"] += 1
    if status == ThumbnailStatus.THUMBNAIL_FAILED:
        return Handover("regeneration produced no cover: the snapshot task failed")
    if asked["checks"] >= settings.regenerate_attempts:
        return Handover(f"regeneration produced no cover after {asked['checks']} checks")
    return Retry("waiting for the regenerated cover", after=settings.regenerate_check_delay)


# -- fallback -----------------------------------------------------------------------------


async def _fallback(asset: AssetCalls, ctx: Context) -> Outcome:
    settings = ctx.clients.covers
    detail = await asset.detail()
    set_cover: dict[str, Any] | None = ctx.memo.get("fallback")
    if set_cover is not None:
        return await _check_fallback(asset, ctx, detail, set_cover)
    if detail.cover_urls:
        return Skipped(_COVER_PRESENT)
    if _thumbnail_status(detail) == ThumbnailStatus.THUMBNAILING:
        # The running task may set a cover itself, or bring better snapshots.
        return Retry("waiting for a running snapshot task", after=settings.snapshot_retry_after)
    choice = _choose_snapshot(detail, settings)
    if choice is None:
        return await _request_snapshots(asset, ctx, detail)
    # Another actor (an operator, VOD, a task) may have set a cover since the first read.
    if (await asset.detail()).cover_urls:
        return Skipped(_COVER_PRESENT)
    kind, snapshot = choice
    return await _set(asset, ctx, kind, snapshot, resets=0)


async def _set(
    asset: AssetCalls, ctx: Context, kind: SnapshotKind, snapshot: Snapshot, resets: int
) -> Outcome:
    url = snapshot.url.strip()
    await asset.set_cover(url)
    ctx.memo["fallback"] = {"url": url, "kind": kind, "offset": snapshot.offset}
    ctx.memo["fallback"] |= {"checks": 0, "resets": resets}
    ctx.annotate(cover="set", cover_kind=kind, cover_offset=snapshot.offset, cover_url=url)
    settings = ctx.clients.covers
    return Retry("waiting for the new cover to show", after=settings.verify_delay)


async def _check_fallback(
    asset: AssetCalls, ctx: Context, detail: AssetDetail, set_cover: dict[str, Any]
) -> Outcome:
    """A cover was set: it counts once VOD shows it. One that does not show is set once
    more; one that never does is the event's permanent failure, said plainly."""
    if detail.cover_urls:
        return _verified(ctx, "fallback", detail)
    settings = ctx.clients.covers
    set_cover["checks"] += 1
    if set_cover["checks"] < settings.verify_checks and not ctx.last_try:
        return Retry("waiting for the new cover to show", after=settings.verify_delay)
    if set_cover["resets"] < 1 and not ctx.last_try:
        snapshot = Snapshot(offset=set_cover["offset"], url=set_cover["url"])
        return await _set(asset, ctx, set_cover["kind"], snapshot, resets=1)
    return Failed(
        f"the cover set from {set_cover['url']} never showed after "
        f"{set_cover['checks']} checks, set {set_cover['resets'] + 1} times"
    )


async def _request_snapshots(asset: AssetCalls, ctx: Context, detail: AssetDetail) -> Outcome:
    settings = ctx.clients.covers
    if ctx.last_try:
        # A task started now could never be checked: say why instead of a blind request.
        return Failed("no usable snapshot, and no retry left to wait for a snapshot task")
    if ctx.memo.get("snapshots_requested"):
        return Retry("waiting for the requested snapshots", after=settings.snapshot_retry_after)
    offsets = _inside(settings.snapshot_offsets, detail.duration)
    started = await asset.start_task(offsets, _cover_position(offsets, settings))
    ctx.memo["snapshots_requested"] = True
    ctx.annotate(snapshot_task=started.task_id, snapshot_task_started=started.started)
    reason = "requested snapshots" if started.started else "waiting for a running snapshot task"
    return Retry(reason, after=settings.snapshot_retry_after)


# -- shared -------------------------------------------------------------------------------


def _verified(ctx: Context, source: str, detail: AssetDetail) -> Outcome:
    first_seen = ctx.record.first_seen_ms or ctx.record.timestamp_ms
    after = max(0.0, ctx.clock.wall() - first_seen / 1000)
    metrics.COVERS_VERIFIED.labels(source).inc()
    metrics.COVER_VERIFIED_SECONDS.labels(source).observe(after)
    ctx.annotate(
        cover="verified",
        cover_source=source,
        cover_url=detail.cover_urls[0],
        verified_after_s=round(after, 3),
    )
    return DONE


def _thumbnail_status(detail: AssetDetail) -> str | None:
    return detail.thumbnail_info.thumbnail_status if detail.thumbnail_info else None


def _inside(offsets: Sequence[int], duration: float | None) -> list[int]:
    """The offsets inside the video; a video shorter than all of them gets its middle."""
    wanted = sorted(set(offsets))
    if duration is None:
        return wanted
    inside = [offset for offset in wanted if offset < duration]
    return inside or [int(duration // 2)]


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
