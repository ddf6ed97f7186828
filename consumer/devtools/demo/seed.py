"""The demo's seed: about 600 assets in the simulator and a thousand events about them,
shaped like VOD's traffic (duplicates, unknown types), each to be pushed to the ingest as
VOD would (a signed SMN push or an MFS callback), with what a hostile or broken world adds:
forged notifications, SMN redeliveries, subscription confirmations (one on a host the
ingest must not call), and records a broken bridge wrote straight to the topic
(malformed ones, and CloudEvents in their three shapes)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consumer.testing.vodsim import SimState

__all__ = ["FORGED_MFS", "FORGED_SMN", "REDELIVERED_SMN", "SAMPLES", "Plan", "Push", "seed_assets"]

# The seeded mix: assets by kind, then the extra events about them.
OK_ASSETS = 430  # covered by VOD, one coverComplete SUCCEED each
FAILED_COVERED = 25  # coverComplete FAILED, but a cover is there by now: leave it alone
FAILED_WITH_SNAPSHOTS = 70  # no cover, sample snapshots exist: the fallback can use one
FAILED_BARE = 75  # no cover, no snapshots: regeneration, else snapshots are requested
SUCCEED_DUPLICATES = 230  # VOD delivers at least once
FAILED_DUPLICATES = 30
THUMBNAILS_SUCCEED = 50  # for covered assets with snapshots: nothing to do
THUMBNAILS_FAILED = 10
OTHER_EVENTS = 40  # transcodeComplete: no route
SMN_SHARE = 0.5  # pushed by SMN (signed); the rest by MFS (HMAC)
FORGED_SMN = 15  # a signed message altered after signing
FORGED_MFS = 10  # an MFS callback signed with another key
REDELIVERED_SMN = 20  # SMN delivers at least once: the same message again
CLOUDEVENTS = 12  # coverComplete SUCCEED again, as CloudEvents written to the topic
SAMPLES = (0, 10, 20, 30)  # seconds; 0 is too early to be a cover (min_offset_seconds)


@dataclass(frozen=True)
class Push:
    """One notification for the ingest: its kind, how (``smn``/``mfs``), the VOD event."""

    kind: str
    transport: str
    event: dict[str, Any]


@dataclass
class Plan:
    """What was seeded: the notifications to push, the records to write straight to the
    topic, and what the checks need to know."""

    pushes: list[Push] = field(default_factory=list)
    direct: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = field(
        default_factory=list
    )  # (key, value, headers)
    mix: Counter[str] = field(default_factory=Counter)
    via: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, transport)
    covered: dict[str, str] = field(default_factory=dict)  # asset -> its cover URL at start
    failed_covered: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # uncovered FAILED asset -> kind
    malformed: list[bytes] = field(default_factory=list)

    def add(self, kind: str, body: dict[str, Any], smn: bool) -> None:
        transport = "smn" if smn else "mfs"
        self.pushes.append(Push(kind, transport, body))
        self.mix[kind] += 1
        self.via[kind, transport] += 1

    def write(
        self, kind: str, key: str | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        self.direct.append((key.encode() if key else None, value, headers))
        self.mix[kind] += 1
        self.via[kind, "topic"] += 1


def seed_assets(state: SimState, seed: int = 7) -> Plan:
    """Add the demo's assets to ``state``; return the events about them, shuffled."""
    rng = random.Random(seed)
    plan = Plan()

    def new_asset(cover: bool, snapshots: Iterable[int] = ()) -> str:
        asset = f"{rng.getrandbits(128):032x}"
        url = state.cover_url(asset) if cover else None
        state.add_asset(asset, cover=url, snapshots=list(snapshots), title=f"video {asset[:6]}")
        if url is not None:
            plan.covered[asset] = url
        return asset

    ok = [new_asset(True, SAMPLES if i % 3 else ()) for i in range(OK_ASSETS)]
    covered = [new_asset(True, SAMPLES if i % 2 else ()) for i in range(FAILED_COVERED)]
    snapped = [new_asset(False, SAMPLES) for _ in range(FAILED_WITH_SNAPSHOTS)]
    bare = [new_asset(False) for _ in range(FAILED_BARE)]
    plan.failed_covered = set(covered)
    plan.failed = {a: "with snapshots" for a in snapped} | {a: "without snapshots" for a in bare}

    def cover(asset: str, status: str) -> None:
        smn = rng.random() < SMN_SHARE
        plan.add(f"coverComplete {status}", _cover_event(state, asset, status), smn)

    for asset in ok:
        cover(asset, "SUCCEED")
    for asset in rng.sample(ok, SUCCEED_DUPLICATES):
        cover(asset, "SUCCEED")
    failing = [*covered, *snapped, *bare]
    for asset in failing:
        cover(asset, "FAILED")
    for asset in rng.sample(failing, FAILED_DUPLICATES):
        cover(asset, "FAILED")
    with_samples = [a for a in ok if state.assets[a].snapshot_urls()]
    for asset in rng.sample(with_samples, THUMBNAILS_SUCCEED):
        plan.add("thumbnailComplete", _thumbnail_event(state, asset), rng.random() < SMN_SHARE)
    for asset in rng.sample(ok, THUMBNAILS_FAILED):
        event = _thumbnail_event(state, asset, failed=True)
        plan.add("thumbnailComplete", event, rng.random() < SMN_SHARE)
    for asset in rng.sample(ok, OTHER_EVENTS):
        body = {"event_type": "transcodeComplete", "transcode_info": {"asset_id": asset}}
        plan.add("transcodeComplete (no route)", body, rng.random() < SMN_SHARE)
    for n, asset in enumerate(rng.sample(ok, CLOUDEVENTS)):
        key, value, headers = _cloudevent(n, _cover_event(state, asset, "SUCCEED"))
        plan.write("CloudEvents coverComplete SUCCEED", key, value, headers)
    for n, value in enumerate(_malformed()):
        plan.write("malformed", f"bad-{n}" if n % 2 else None, value, [])
        plan.malformed.append(value)
    rng.shuffle(plan.pushes)
    return plan


def _cloudevent(n: int, event: dict[str, Any]) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """The event as a CloudEvent: structured, in EventGrid's batch of one, or binary."""
    asset = event["cover_info"]["asset_id"]
    attributes = {
        "specversion": "1.0",
        "id": f"ce-{n}",
        "source": "/vod/cn-north-4/demo-project",
        "type": "com.huaweicloud.vod.coverComplete",
        "datacontenttype": "application/json",
    }
    structured = [("content-type", b"application/cloudevents+json")]
    if n % 3 == 0:
        return asset, json.dumps({**attributes, "data": event}).encode(), structured
    if n % 3 == 1:
        return asset, json.dumps({"events": [{**attributes, "data": event}]}).encode(), []
    binary = [(f"ce_{k}", str(v).encode()) for k, v in attributes.items() if k != "datacontenttype"]
    return asset, json.dumps(event).encode(), [*binary, ("content-type", b"application/json")]


def _cover_event(state: SimState, asset: str, status: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "asset_id": asset,
        "status": status,
        "title": state.assets[asset].title,
        "cover_type": "HEAD_FRAME_COVER",
    }
    if status == "FAILED":
        info |= {"error_code": "VOD.10013", "error_msg": "null"}
    else:
        info["cover_urls"] = [{"offset": 0, "url": state.cover_url(asset)}]
    return {"event_type": "coverComplete", "cover_info": info}


def _thumbnail_event(state: SimState, asset: str, failed: bool = False) -> dict[str, Any]:
    info: dict[str, Any] = {"asset_id": asset, "status": "FAILED" if failed else "SUCCEED"}
    if failed:
        info |= {"error_code": "VOD.10104", "error_msg": "snapshot task failed"}
    else:
        for kind, snaps in state.assets[asset].snapshots.items():
            info[kind] = [snap.model_dump() for snap in snaps]
    return {"event_type": "thumbnailComplete", "thumbnail_info": info}


def _malformed() -> list[bytes]:
    """Each one different, so each can be found in the dead-letter topic by its bytes."""
    smn = "urn:smn:cn-north-4:demo:vod-events"
    return [
        b"not json at all",
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"event_type": "coverComplete", "cover_info": {"asset_id": "trunc',
        b"\x00\x01\x02\x03",
        b"[1, 2, 3]",
        b'{"event_type": "coverComplete", "cover_info": {"status": "FAILED"}}',
        b'{"event_type": "coverComplete", "cover_info": {"asset_id": "", "status": "FAILED"}}',
        b'{"event_type": "thumbnailComplete"}',
        b'{"event_type": 42, "cover_info": {}}',
        json.dumps({"type": "Notification", "topic_urn": smn, "message": "{oops"}).encode(),
        json.dumps({"type": "Notification", "topic_urn": smn, "message_id": "m-1"}).encode(),
        json.dumps({"type": "Notification", "topic_urn": smn, "message": "[]"}).encode(),
    ]
