"""What the VOD simulator knows: assets, keys, quotas, faults to inject, and counters.

Kept apart from the HTTP layer (``simulator.py``) so tests and the demo can seed and
inspect it directly. Times that matter to behaviour (signature dates, key lockouts,
quota windows) come from the injected ``clock``; only latencies and snapshot tasks use
real time, because they exist to be waited for.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from consumer.testing.vodasset import KIND_OF_TYPE, SimAsset, TaskDone, offsets
from consumer.vod.models import Snapshot, SnapshotKind, ThumbnailParams, ThumbnailStatus

__all__ = ["Faults", "QuotaGroup", "Quotas", "SimAsset", "SimState", "TaskDone"]

_log = logging.getLogger(__name__)

LOCK_AFTER_FAILURES = 5
LOCK_SECONDS = 300.0

QuotaGroup = Literal["write", "query"]


@dataclass
class Faults:
    """Shares (0..1) of requests that fail on purpose, and added latency (seconds)."""

    latency: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0  # 500 VOD.10051
    timeout_rate: float = 0.0  # answered only after ``timeout_sleep``
    timeout_sleep: float = 30.0  # longer than any client timeout
    reset_rate: float = 0.0  # connection dropped without an answer
    # A write is carried out, then the connection drops before the answer: the caller
    # cannot know that it worked (a task started, a cover set).
    lost_answer_rate: float = 0.0
    #: How such an answer is lost: None, the connection drops; a status, the gateway
    #: answers it (504 APIG.0202: it gave up waiting for VOD, which went on regardless).
    lost_answer_status: int | None = None
    #: What a throttled answer says in its Retry-After header (None: no header).
    retry_after: str | None = None


@dataclass
class Quotas:
    """Requests per tenant (project) per minute; the defaults are VOD's."""

    writes_per_minute: int = 100
    queries_per_minute: int = 1500
    # VOD's window is a minute; demos and tests shrink it (with the daemon's vod.quota_window).
    window: float = 60.0


@dataclass
class SimState:
    """The simulator's configuration and memory; change fields freely between requests."""

    project_id: str = "sim-project"
    keys: dict[str, str] = field(default_factory=dict)  # access key -> secret key
    #: Temporary keys (each also in ``keys``): access key -> (security token, ``clock``
    #: time it expires at). Their requests must carry the token, signed.
    temporary: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: The gateway spells its codes ``APIG.xxxx`` or ``APIGW.xxxx``: Huawei's answers use both.
    gateway_spelling: Literal["APIG", "APIGW"] = "APIG"
    #: (status, code, message) the gateway refuses every authenticated request with, if set
    #: (an ``APIG.`` code spelt as ``gateway_spelling`` says).
    gateway_refusal: tuple[int, str, str] | None = None
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    cdn_host: str = "sim.cdn-vod.example.com"
    create_on_demand: bool = False
    on_demand_snapshots: Sequence[int] = (0, 10, 20)
    task_delay: float = 0.05
    task_failure_rate: float = 0.0
    #: Seconds before a new cover shows in ShowAssetDetail (VOD: 3-5 minutes).
    cover_delay: float = 0.0
    #: Whether ListThumbnailInfo shows each task's id (every field of it is optional).
    list_task_ids: bool = True
    faults: Faults = field(default_factory=Faults)
    quotas: Quotas = field(default_factory=Quotas)
    on_task_done: Callable[[TaskDone], Awaitable[None]] | None = None
    assets: dict[str, SimAsset] = field(default_factory=dict, init=False)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter, init=False)
    throttled: int = field(default=0, init=False)  # requests answered with a quota error
    #: When each request arrived (``clock`` time), by quota group: every one, reset or
    #: throttled ones included, as the tenant's quota may count them.
    received: dict[str, list[float]] = field(
        default_factory=lambda: {"write": [], "query": []}, init=False
    )
    _failures: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _locked_until: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _windows: dict[tuple[str, str], deque[float]] = field(
        default_factory=dict, init=False, repr=False
    )
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def snapshot_url(self, asset_id: str, kind: SnapshotKind, offset: float) -> str:
        return f"https://{self.cdn_host}/asset/{asset_id}/snapshot/{kind}/{offset:g}.jpg"

    def set_cover(self, asset: SimAsset, source: str) -> None:
        """Make ``source`` (a snapshot URL) the asset's cover, shown after ``cover_delay``."""
        asset.cover_url = self.cover_url(asset.asset_id)
        asset.cover_source = source
        asset.cover_shows_at = self.clock() + self.cover_delay

    def cover_url(self, asset_id: str) -> str:
        return f"https://{self.cdn_host}/asset/{asset_id}/cover/Cover0.jpg"

    def add_asset(
        self,
        asset_id: str,
        *,
        cover: str | None = None,
        snapshots: Sequence[int] = (),
        thumbnail_status: str | None = None,
        title: str = "",
        duration: float = 60,
    ) -> SimAsset:
        """An asset with ``sample`` snapshots at the given seconds. Its thumbnail status
        defaults to succeeded with snapshots, else to none (no thumbnail_info shown); a
        status given here is shown, as on an asset whose earlier task succeeded."""
        samples = [
            Snapshot(offset=s, url=self.snapshot_url(asset_id, "sample", s)) for s in snapshots
        ]
        status = thumbnail_status or (ThumbnailStatus.THUMBNAIL_SUCCEED if snapshots else None)
        asset = SimAsset(asset_id, cover, None, {"sample": samples}, status, title, duration)
        asset.thumbnail_shown = status is not None
        self.assets[asset_id] = asset
        return asset

    def find_asset(self, asset_id: str) -> SimAsset | None:
        asset = self.assets.get(asset_id)
        if asset is None and self.create_on_demand:
            asset = self.add_asset(asset_id, snapshots=self.on_demand_snapshots)
        return asset

    def most_in_window(self, group: QuotaGroup, window: float | None = None) -> int:
        """The most requests of ``group`` that arrived within any one quota window."""
        span = self.quotas.window if window is None else window
        times, best, start = sorted(self.received[group]), 0, 0
        for end, now in enumerate(times):
            while times[start] <= now - span:
                start += 1
            best = max(best, end - start + 1)
        return best

    def count(self, operation: str, result: str | None = None) -> int:
        """Calls of ``operation``; with ``result``, only those that ended so ("ok", an
        error code, "timeout" or "reset")."""
        return sum(
            n for (op, res), n in self.calls.items() if op == operation and result in (None, res)
        )

    # Access keys: consecutive signature failures lock a key for a while.

    def key_locked(self, access_key: str) -> bool:
        until = self._locked_until.get(access_key)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self._locked_until[access_key]
        self._failures.pop(access_key, None)
        return False

    def signature_failed(self, access_key: str) -> None:
        failures = self._failures.get(access_key, 0) + 1
        self._failures[access_key] = failures
        if failures >= LOCK_AFTER_FAILURES:
            self._locked_until[access_key] = self.clock() + LOCK_SECONDS

    def signature_passed(self, access_key: str) -> None:
        self._failures.pop(access_key, None)

    def admit(self, tenant: str, group: QuotaGroup) -> bool:
        """Whether a request fits the tenant's quota (a sliding one-minute window)."""
        quotas = self.quotas
        limit = quotas.writes_per_minute if group == "write" else quotas.queries_per_minute
        window = self._windows.setdefault((tenant, group), deque())
        now = self.clock()
        while window and window[0] <= now - self.quotas.window:
            window.popleft()
        if len(window) >= limit:
            self.throttled += 1
            return False
        window.append(now)
        return True

    # Snapshot tasks run in the background, as VOD's do.

    def start_task(self, asset: SimAsset, params: ThumbnailParams) -> str:
        task_id = uuid.uuid4().hex
        asset.running_task = task_id
        asset.thumbnail_status = ThumbnailStatus.THUMBNAILING
        asset.tasks.append(
            {
                "task_id": task_id,
                "thumbnail_para": params.model_dump(exclude_none=True),
                "thumbnail_count": 0,
            }
        )
        task = asyncio.get_running_loop().create_task(self._finish(asset, task_id, params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task_id

    async def settle(self) -> None:
        """Wait until every snapshot task (and its ``on_task_done``) has finished."""
        while pending := [task for task in self._tasks if not task.done()]:
            await asyncio.gather(*pending)

    async def close(self) -> None:
        """Cancel the running snapshot tasks (on simulator shutdown)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _finish(self, asset: SimAsset, task_id: str, params: ThumbnailParams) -> None:
        await asyncio.sleep(self.task_delay)
        asset.running_task = None
        seconds = offsets(params, asset.duration)
        if not seconds or self.rng.random() < self.task_failure_rate:
            asset.thumbnail_status = ThumbnailStatus.THUMBNAIL_FAILED
            done = TaskDone(
                asset.asset_id, task_id, False, error_code="VOD.10104", error_msg="task failed"
            )
        else:
            kind = KIND_OF_TYPE[params.type]
            snaps = [
                Snapshot(offset=o, url=self.snapshot_url(asset.asset_id, kind, o)) for o in seconds
            ]
            for listed in asset.tasks:
                if listed["task_id"] == task_id:
                    listed["thumbnail_count"] = len(snaps)
            asset.snapshots[kind] = snaps
            asset.thumbnail_status = ThumbnailStatus.THUMBNAIL_SUCCEED
            asset.thumbnail_shown = True
            position = params.cover_position or 1  # VOD's documented default
            if position <= len(snaps):
                self.set_cover(asset, snaps[position - 1].url)
            done = TaskDone(asset.asset_id, task_id, True, tuple(snaps), asset.cover_url)
        if self.on_task_done is not None:
            try:
                await self.on_task_done(done)
            except Exception:
                # The demo's publisher failing must not pass for a failed snapshot task.
                _log.exception("on_task_done failed for task %s", task_id)
