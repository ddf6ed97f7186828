"""The demo's seed: about 600 assets in the simulator and a thousand events about them,
shaped like VOD's traffic (duplicates, SMN envelopes, unknown types, malformed records)."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from consumer.testing.vodsim import SimState

__all__ = ["SAMPLES", "Plan", "seed_assets"]

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
SMN_CONFIRMATIONS = 6
SMN_SHARE = 0.12  # cover events arriving in an SMN envelope
SAMPLES = (0, 10, 20, 30)  # seconds; 0 is too early to be a cover (min_offset_seconds)


@dataclass
class Plan:
    """What was seeded: the records to produce and what the checks need to know."""

    events: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    mix: Counter[str] = field(default_factory=Counter)
    in_smn: Counter[str] = field(default_factory=Counter)  # of ``mix``, in an SMN envelope
    covered: dict[str, str] = field(default_factory=dict)  # asset -> its cover URL at start
    failed_covered: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # uncovered FAILED asset -> kind
    malformed: list[bytes] = field(default_factory=list)

    def add(self, kind: str, key: str | None, body: Any, smn: bool = False) -> None:
        value = json.dumps(_smn(json.dumps(body)) if smn else body).encode()
        self.events.append((key.encode() if key else None, value))
        self.mix[kind] += 1
        self.in_smn[kind] += smn


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
        plan.add(f"coverComplete {status}", asset, _cover_event(state, asset, status), smn)

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
        plan.add("thumbnailComplete", asset, _thumbnail_event(state, asset))
    for asset in rng.sample(ok, THUMBNAILS_FAILED):
        plan.add("thumbnailComplete", asset, _thumbnail_event(state, asset, failed=True))
    for asset in rng.sample(ok, OTHER_EVENTS):
        body = {"event_type": "transcodeComplete", "transcode_info": {"asset_id": asset}}
        plan.add("transcodeComplete (no route)", asset, body)
    for n in range(SMN_CONFIRMATIONS):
        body = {
            "type": "SubscriptionConfirmation",
            "message_id": f"confirm-{n}",
            "message": "You are invited to subscribe to topic vod-events.",
            "topic_urn": "urn:smn:cn-north-4:demo:vod-events",
            "subscribe_url": f"https://smn.example/confirm?token={n}",
        }
        plan.add("SMN SubscriptionConfirmation", None, body)
    for n, value in enumerate(_malformed()):
        plan.events.append((f"bad-{n}".encode() if n % 2 else None, value))
        plan.malformed.append(value)
        plan.mix["malformed"] += 1
    rng.shuffle(plan.events)
    return plan


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


def _smn(message: str) -> dict[str, Any]:
    return {
        "type": "Notification",
        "message_id": uuid.uuid4().hex,
        "topic_urn": "urn:smn:cn-north-4:demo:vod-events",
        "timestamp": "2026-11-21T10:00:00Z",
        "subject": "VOD event",
        "message": message,
    }


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
