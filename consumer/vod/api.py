"""What handlers may ask of VOD: the client's calls, whatever wraps them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from consumer.vod.client import Category, VodCall
from consumer.vod.models import AssetDetail, ProcessTaskRequest, ProcessTaskResponse, ThumbnailTasks

__all__ = ["VodApi"]


class VodApi(Protocol):
    async def show_asset_detail(
        self,
        asset_id: str,
        categories: Sequence[Category] = ("base_info", "thumbnail_info"),
        *,
        calls: list[VodCall] | None = None,
    ) -> AssetDetail: ...

    async def update_cover(
        self, thumbnail_url: str, *, calls: list[VodCall] | None = None
    ) -> None: ...

    async def create_process_task(
        self, request: ProcessTaskRequest, *, calls: list[VodCall] | None = None
    ) -> ProcessTaskResponse: ...

    async def list_thumbnail_tasks(
        self, asset_id: str, *, calls: list[VodCall] | None = None
    ) -> ThumbnailTasks: ...
