"""The simulator's side of the demo: like VOD, it announces every finished snapshot task
on the topic, and tells how each asset got its cover."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from consumer.testing.vodsim import TaskDone

__all__ = ["Publisher", "cover_origin"]


class Publisher:
    """``on_task_done``: announce a finished snapshot task on the topic, as VOD does."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self.sent: Counter[str] = Counter()
        self.busy = 0

    async def __call__(self, done: TaskDone) -> None:
        self.busy += 1  # before the first await: the task is no longer "running"
        try:
            for kind, body in _task_events(done):
                value = json.dumps(body).encode()
                await self._producer.send_and_wait(self._topic, value, key=done.asset_id.encode())
                self.sent[kind] += 1
        finally:
            self.busy -= 1

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def _task_events(done: TaskDone) -> list[tuple[str, dict[str, Any]]]:
    info: dict[str, Any] = {
        "asset_id": done.asset_id,
        "task_id": done.task_id,
        "status": "SUCCEED" if done.succeeded else "FAILED",
    }
    if not done.succeeded:
        info |= {"error_code": done.error_code, "error_msg": done.error_msg}
    for snap in done.snapshots:
        kind = _snapshot_kind(snap.url)
        info.setdefault(kind, []).append(snap.model_dump())
    events = [("thumbnailComplete", {"event_type": "thumbnailComplete", "thumbnail_info": info})]
    if done.succeeded and done.cover_url:
        cover = {
            "asset_id": done.asset_id,
            "status": "SUCCEED",
            "cover_type": "HEAD_FRAME_COVER",
            "cover_urls": [{"offset": 0, "url": done.cover_url}],
        }
        events.append(("coverComplete", {"event_type": "coverComplete", "cover_info": cover}))
    return events


def _snapshot_kind(url: str) -> str:
    for kind in ("sample", "dots", "quantity"):
        if f"/snapshot/{kind}/" in url:
            return kind
    return "dots"


def cover_origin(source: str | None) -> str:
    """How an asset got its cover, from the snapshot the simulator set it from."""
    if source is None:
        return "none"
    if "/snapshot/dots/0." in source:
        return "regenerated"
    if "/snapshot/sample/" in source:
        return "fallback: existing snapshot"
    return "fallback: requested snapshots"
