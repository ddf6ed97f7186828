"""The VOD calls the cover handlers make about one asset, and what they cost.

Every call is recorded (``calls``, for the outcome line's ``vod_calls``), failed or not,
and counted into the record's memo, so the outcome line and /metrics tell what a record
cost in VOD queries, writes and billed snapshot tasks across all its calls and tiers.

Starting a snapshot task is the one call that is neither free nor idempotent: a request
that got no answer (a timeout, a reset connection) or a 5xx may have started a billed
task. Before anyone asks again, the asset's task list is read: a task that appeared since
is taken as the one started, so one request never becomes two billed tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consumer import metrics
from consumer.vod.api import VodApi
from consumer.vod.client import VodCall
from consumer.vod.errors import VodRetryLater, VodThrottled, VodTransientError
from consumer.vod.models import AssetDetail, ProcessTaskRequest, ThumbnailParams

__all__ = ["AssetCalls", "TaskStart"]

_WRITES = frozenset({"update_cover", "create_process_task"})


@dataclass(frozen=True, slots=True)
class TaskStart:
    """What came of asking for a snapshot task: ``started`` (billed), with VOD's id when
    it gave one (single-snapshot tasks get none); or not started as another still runs."""

    started: bool
    task_id: str | None = None


@dataclass(slots=True)
class AssetCalls:
    api: VodApi
    asset_id: str
    calls: list[VodCall] = field(default_factory=list)
    billed: int = 0  # snapshot tasks this call started
    _listed: int | None = None  # how many tasks the asset had, as last listed (total)

    async def detail(self) -> AssetDetail:
        return await self.api.show_asset_detail(self.asset_id, calls=self.calls)

    async def set_cover(self, url: str) -> None:
        await self.api.update_cover(url, calls=self.calls)

    async def head_frame_task_seen(self) -> bool:
        """Whether VOD lists a head-frame task (one snapshot at 0 s) on the asset: a
        regeneration was asked for before, by this event or an earlier one."""
        tasks = await self.api.list_thumbnail_tasks(self.asset_id, calls=self.calls)
        self._listed = tasks.total
        return any(task.is_head_frame for task in tasks.thumbnails)

    async def start_task(self, offsets: Sequence[int], cover_position: int | None) -> TaskStart:
        """Ask for snapshots at ``offsets`` (seconds); the one at ``cover_position``
        (1-based) becomes the cover."""
        thumbnail = ThumbnailParams(type="dots", dots=list(offsets), cover_position=cover_position)
        request = ProcessTaskRequest(asset_id=self.asset_id, thumbnail=thumbnail)
        before = self._listed
        if before is None:
            before = (await self.api.list_thumbnail_tasks(self.asset_id, calls=self.calls)).total
        try:
            answer = await self.api.create_process_task(request, calls=self.calls)
        except VodRetryLater:
            return TaskStart(started=False)  # VOD.10080: a task still runs (maybe ours)
        except VodTransientError as exc:
            if isinstance(exc, VodThrottled):
                raise  # refused at the gateway, before VOD: nothing was started
            # No answer, or a 5xx: a gateway that gave up waiting (504), a proxy's page
            # (502) or VOD's own internal error may each follow a task VOD did start.
            # Told apart by VOD's total, not by id (VOD may list a task without one) nor by
            # the page (it holds 100 at most): the new task need not even be on it.
            listed = await self.api.list_thumbnail_tasks(self.asset_id, calls=self.calls)
            if listed.total <= before:
                raise  # none appeared: asking again is safe
            self.billed += 1
            whole = len(listed.thumbnails) >= listed.total  # then the newest is the last
            return TaskStart(started=True, task_id=listed.thumbnails[-1].task_id if whole else None)
        self.billed += 1
        return TaskStart(started=True, task_id=answer.thumbnail_task_id)

    def account(self, memo: dict[str, Any], handler: str | None) -> dict[str, int]:
        """Add this call's cost to the record's running totals (kept in ``memo``); return
        the totals for the outcome line."""
        cost = memo.setdefault("vod", {"queries": 0, "writes": 0, "billed_tasks": 0})
        writes = sum(1 for call in self.calls if call.operation in _WRITES)
        cost["queries"] += len(self.calls) - writes
        cost["writes"] += writes
        cost["billed_tasks"] += self.billed
        if self.billed:
            metrics.VOD_BILLED_TASKS.labels(handler or "none").inc(self.billed)
        return {f"vod_{kind}": count for kind, count in cost.items()}
