"""One simulated VOD asset: its cover, snapshots, tasks, and the detail VOD shows of it."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from consumer.vod.models import Snapshot, SnapshotKind, ThumbnailParams

__all__ = ["KIND_OF_TYPE", "SimAsset", "TaskDone", "offsets"]

_KINDS: tuple[SnapshotKind, ...] = ("sample", "dots", "quantity")
KIND_OF_TYPE: Mapping[str, SnapshotKind] = {
    "time": "sample",
    "dots": "dots",
    "quantity": "quantity",
}


@dataclass
class SimAsset:
    """One media asset. ``cover_source`` is the snapshot the cover was last set from:
    VOD keeps one cover URL and changes the image behind it."""

    asset_id: str
    cover_url: str | None = None
    cover_source: str | None = None
    snapshots: dict[SnapshotKind, list[Snapshot]] = field(default_factory=dict)
    thumbnail_status: str | None = None
    title: str = ""
    duration: float = 60
    running_task: str | None = None
    #: VOD shows ``thumbnail_info`` only once a snapshot task has succeeded on the asset
    #: (VOD_API.md); from then on it shows the status of the latest task, running or not.
    thumbnail_shown: bool = False
    #: A new cover shows only from this (clock) time: VOD takes minutes to show a change.
    cover_shows_at: float = 0.0
    #: Every snapshot task started on the asset, as ListThumbnailInfo lists them.
    tasks: list[dict[str, Any]] = field(default_factory=list)

    def snapshot_urls(self) -> set[str]:
        return {snap.url for snaps in self.snapshots.values() for snap in snaps}

    def detail(self, categories: Collection[str], now: float = float("inf")) -> dict[str, Any]:
        """The ShowAssetDetail body at clock time ``now``; no categories means all."""
        detail: dict[str, Any] = {"asset_id": self.asset_id}
        if not categories or "base_info" in categories:
            cover = self.cover_url if now >= self.cover_shows_at else None
            covers = [{"cover_url": cover}] if cover else []
            detail["base_info"] = {
                "title": self.title,
                "video_type": "MP4",
                "meta_data": {"duration": self.duration, "width": 1280, "height": 720},
                "cover_info_array": covers,
            }
        shown = self.thumbnail_shown and self.thumbnail_status
        if shown and (not categories or "thumbnail_info" in categories):
            detail["thumbnail_info"] = {
                **{k: [s.model_dump() for s in self.snapshots.get(k, [])] for k in _KINDS},
                "exec_desc": "",
                "thumbnail_status": self.thumbnail_status,
            }
        return detail


@dataclass(frozen=True, slots=True)
class TaskDone:
    """A finished snapshot task: what a thumbnailComplete (and coverComplete) would say."""

    asset_id: str
    task_id: str
    succeeded: bool
    snapshots: tuple[Snapshot, ...] = ()
    cover_url: str | None = None
    error_code: str | None = None
    error_msg: str | None = None


def offsets(params: ThumbnailParams, duration: float) -> list[float]:
    """The seconds a task takes snapshots at; none past the end of the video."""
    if params.type == "dots":
        return sorted({dot for dot in params.dots or () if 0 <= dot < duration})
    if params.type == "time":
        step = params.time or duration
        return [n * step for n in range(int(duration // step) + 1) if n * step < duration]
    count = params.quantity or 1
    return [duration * i / count for i in range(count)]
