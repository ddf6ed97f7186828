"""VOD's three asset operations as the simulator answers them, and a ``VodApi`` that calls
them in memory.

``show_asset_detail``, ``update_cover`` and ``create_process_task`` work on a
:class:`~consumer.testing.vodsim.SimState` and raise :class:`SimAnswer` where VOD answers
with an error. The HTTP simulator (``consumer.devtools.simulator``) serves them behind the
gateway's checks; :class:`MemoryVod` calls them directly, for ``call_handler``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pydantic

from consumer.testing.vodsim import QuotaGroup, SimState
from consumer.vod.client import Category, VodCall
from consumer.vod.errors import classify
from consumer.vod.models import (
    TASK_PAGE,
    AssetDetail,
    ProcessTaskRequest,
    ProcessTaskResponse,
    ThumbnailTasks,
)

__all__ = [
    "CATEGORIES",
    "MemoryVod",
    "SimAnswer",
    "create_process_task",
    "list_thumbnail_tasks",
    "show_asset_detail",
    "update_cover",
]

CATEGORIES = frozenset({"base_info", "transcode_info", "thumbnail_info", "review_info"})
# The asset a snapshot URL belongs to: set-cover requests carry no asset id.
_ASSET_IN_URL = re.compile(r"/asset/([^/]+)/snapshot/")


class SimAnswer(Exception):
    """An error answer, raised from any step and rendered once."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(code)
        self.status, self.code, self.msg = status, code, msg


def show_asset_detail(state: SimState, asset_id: str, categories: Sequence[str]) -> dict[str, Any]:
    if not asset_id or not set(categories) <= CATEGORIES:
        raise SimAnswer(400, "VOD.10053", "invalid asset_id or categories")
    asset = state.find_asset(asset_id)
    if asset is None:
        raise SimAnswer(400, "VOD.10062", "asset does not exist")
    return asset.detail(categories, state.clock())


def list_thumbnail_tasks(state: SimState, asset_id: str, limit: int = 10) -> dict[str, Any]:
    """ListThumbnailInfo: the snapshot tasks started on the asset, running ones too, a page
    of ``limit`` (VOD's default 10) at a time; ``total`` counts them all."""
    asset = state.find_asset(asset_id) if asset_id else None
    if asset is None:
        raise SimAnswer(400, "VOD.10062", "asset does not exist")
    hidden = () if state.list_task_ids else ("task_id",)
    page = [{k: v for k, v in task.items() if k not in hidden} for task in asset.tasks[:limit]]
    return {"total": len(asset.tasks), "thumbnails": page}


def update_cover(state: SimState, body: bytes) -> None:
    try:
        url = json.loads(body)["thumbnailUrl"]
    except (ValueError, KeyError, TypeError):
        raise SimAnswer(400, "VOD.10053", "thumbnailUrl is required") from None
    # No trimming here: a client that sends the docs' padded URL must see it refused.
    match = _ASSET_IN_URL.search(url) if isinstance(url, str) else None
    if match is None:
        raise SimAnswer(400, "VOD.10053", "thumbnailUrl is not a snapshot URL")
    asset = state.find_asset(match.group(1))
    if asset is None:
        raise SimAnswer(400, "VOD.10062", "asset does not exist")
    if url not in asset.snapshot_urls():
        raise SimAnswer(400, "VOD.10053", "thumbnailUrl is not a snapshot of the asset")
    state.set_cover(asset, url)


def create_process_task(state: SimState, body: bytes) -> dict[str, Any]:
    try:
        task = ProcessTaskRequest.model_validate_json(body)
    except pydantic.ValidationError:
        raise SimAnswer(400, "VOD.10053", "invalid process task") from None
    asset = state.find_asset(task.asset_id)
    if asset is None:
        raise SimAnswer(400, "VOD.10062", "asset does not exist")
    if asset.running_task is not None:
        raise SimAnswer(400, "VOD.10080", "a snapshot task is still processing")
    task_id = state.start_task(asset, task.thumbnail)
    answer = {"asset_id": asset.asset_id}
    thumbnail = task.thumbnail
    if thumbnail.type != "dots" or len(thumbnail.dots or ()) > 1:
        answer["thumbnail_task_id"] = task_id  # VOD names multi-snapshot tasks only
    return answer


def quota(state: SimState, group: QuotaGroup) -> None:
    """The gateway's check after authentication, as a request arrives: the tenant's quota."""
    if not state.admit(state.project_id, group):
        raise SimAnswer(429, "APIG.0308", "the throttling threshold has been reached")


def backend(state: SimState) -> None:
    """Behind the gateway: an injected internal error."""
    if state.rng.random() < state.faults.error_rate:
        raise SimAnswer(500, "VOD.10051", "internal error")


class MemoryVod:
    """The ``VodApi`` handlers call, answered by a ``SimState`` in this process: no HTTP,
    no signing, but the same quotas, task behaviour and error classes as the simulator.
    Every call is kept in :attr:`calls`."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.calls: list[VodCall] = []

    async def show_asset_detail(
        self,
        asset_id: str,
        categories: Sequence[Category] = ("base_info", "thumbnail_info"),
        *,
        calls: list[VodCall] | None = None,
    ) -> AssetDetail:
        body = self._answer(
            "show_asset_detail",
            "query",
            calls,
            lambda: show_asset_detail(self.state, asset_id, categories),
        )
        return AssetDetail.model_validate(body)

    async def list_thumbnail_tasks(
        self, asset_id: str, *, calls: list[VodCall] | None = None
    ) -> ThumbnailTasks:
        body = self._answer(
            "list_thumbnail_tasks",
            "query",
            calls,
            lambda: list_thumbnail_tasks(self.state, asset_id, TASK_PAGE),
        )
        return ThumbnailTasks.model_validate(body)

    async def update_cover(self, thumbnail_url: str, *, calls: list[VodCall] | None = None) -> None:
        payload = json.dumps({"thumbnailUrl": thumbnail_url.strip()}).encode()
        self._answer("update_cover", "write", calls, lambda: update_cover(self.state, payload))

    async def create_process_task(
        self, request: ProcessTaskRequest, *, calls: list[VodCall] | None = None
    ) -> ProcessTaskResponse:
        payload = request.model_dump_json(exclude_none=True).encode()
        body = self._answer(
            "create_process_task",
            "write",
            calls,
            lambda: create_process_task(self.state, payload),
        )
        return ProcessTaskResponse.model_validate(body)

    def _answer(
        self, operation: str, group: QuotaGroup, calls: list[VodCall] | None, run: Any
    ) -> Any:
        request_id = uuid.uuid4().hex
        self.state.received[group].append(self.state.clock())
        began = time.perf_counter()
        status, code, result = 200, None, None
        try:
            quota(self.state, group)
            backend(self.state)
            result = run()
        except SimAnswer as answer:
            status, code = answer.status, answer.code
        self.state.calls[operation, code or "ok"] += 1
        call = VodCall(
            operation, status, code, request_id, round((time.perf_counter() - began) * 1000, 1)
        )
        self.calls.append(call)
        if calls is not None:
            calls.append(call)
        if code is not None:
            raise classify(status, {"error_code": code}, request_id)
        return result
