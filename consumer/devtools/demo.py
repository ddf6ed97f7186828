"""``make demo``: the daemon on an embedded broker with a mixed batch of sample events.

Starts Tansu, creates the topic, produces valid, SMN-wrapped, unknown and
malformed records, runs ``cover-consumer run`` on embedded defaults (only the
broker address and fast group timings are set, by environment) until every
record has its outcome line, stops it with SIGTERM and prints a summary.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from consumer.config import Settings
from consumer.devtools.broker import EmbeddedBroker

__all__ = ["main", "sample_events"]

TIMEOUT_S = 90


def sample_events(count: int = 300, seed: int = 7) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs shaped like VOD's traffic, with the awkward cases mixed in."""
    rng = random.Random(seed)
    events: list[tuple[bytes, bytes]] = []
    for i in range(count):
        asset = f"{rng.getrandbits(128):032x}" if i % 10 else f"{i:032x}"
        roll = rng.random()
        if roll < 0.55:
            body: Any = _cover(asset, "SUCCEED")
        elif roll < 0.70:
            body = _cover(asset, "FAILED")
        elif roll < 0.80:
            body = {
                "event_type": "thumbnailComplete",
                "thumbnail_info": {
                    "asset_id": asset,
                    "status": "SUCCEED",
                    "sample": [],
                    "dots": [],
                },
            }
        elif roll < 0.90:
            body = _smn(json.dumps(_cover(asset, "FAILED")))
        elif roll < 0.94:
            body = {"event_type": "transcodeComplete", "transcode_info": {"asset_id": asset}}
        elif roll < 0.96:
            body = {"type": "SubscriptionConfirmation", "message": "confirm", "topic_urn": "urn"}
        else:
            events.append((asset.encode(), rng.choice(_MALFORMED)))
            continue
        events.append((asset.encode(), json.dumps(body).encode()))
    return events


_MALFORMED = [
    b"not json at all",
    b'{"event_type": "coverComplete", "cover_info": {"status": "FAILED"}}',
    b'{"event_type": "coverComplete", "cover_info": ',
    b"\x00\x01\x02",
]


def _cover(asset: str, status: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "status": status,
        "asset_id": asset,
        "title": "demo",
        "cover_type": "HEAD_FRAME_COVER",
    }
    if status == "FAILED":
        info |= {"error_code": "VOD.10013", "error_msg": "null"}
    else:
        info["cover_urls"] = [{"offset": 0, "url": f"https://cdn.example/{asset}/Cover0.jpg"}]
    return {"event_type": "coverComplete", "cover_info": info}


def _smn(message: str) -> dict[str, Any]:
    return {
        "type": "Notification",
        "message_id": "demo",
        "topic_urn": "urn:smn:cn-north-4:demo:vod",
        "timestamp": "2026-11-21T10:00:00Z",
        "message": message,
    }


async def _prepare(bootstrap: str, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value, key=key) for key, value in events])
    finally:
        await producer.stop()


def main() -> int:
    events = sample_events()
    topic = Settings().kafka.topic
    with EmbeddedBroker() as bootstrap, tempfile.TemporaryDirectory() as tmp:
        print(f"broker {bootstrap}; producing {len(events)} sample events to {topic!r}")
        asyncio.run(_prepare(bootstrap, topic, events))
        out = Path(tmp) / "daemon.log"
        env = {
            **os.environ,
            "COVER_CONSUMER__KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            # Tansu delays a group's first join by half the session timeout.
            "COVER_CONSUMER__KAFKA__SESSION_TIMEOUT_MS": "6000",
            "COVER_CONSUMER__KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
        }
        with out.open("wb") as sink:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "consumer", "run"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            outcomes = _wait_for_outcomes(out, len(events), daemon)
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=60)
    _print_summary(outcomes, len(events), code)
    return 0 if code == 0 and len(outcomes) == len(events) else 1


def _wait_for_outcomes(
    out: Path, expected: int, daemon: subprocess.Popen[bytes]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT_S
    outcomes: list[dict[str, Any]] = []
    while len(outcomes) < expected and time.monotonic() < deadline and daemon.poll() is None:
        time.sleep(0.2)
        outcomes = [
            line
            for line in map(json.loads, out.read_bytes().splitlines())
            if line.get("event") == "record_processed"
        ]
    return outcomes


def _print_summary(outcomes: list[dict[str, Any]], expected: int, code: int) -> None:
    by_outcome = Counter((o["outcome"], o["handler"] or "-") for o in outcomes)
    reasons = Counter(_short(o["reason"]) for o in outcomes if o["reason"])
    print(f"\n{len(outcomes)} of {expected} records have an outcome; daemon exit code {code}\n")
    print(f"{'outcome':<15}{'handler':<10}{'records':>8}")
    for (outcome, handler), count in sorted(by_outcome.items()):
        print(f"{outcome:<15}{handler:<10}{count:>8}")
    print("\nreasons (skipped / dead-lettered):")
    for reason, count in reasons.most_common():
        print(f"{count:>6}  {reason}")


def _short(reason: str) -> str:
    # Group JSON parser messages by their kind, not their byte position.
    return reason.split(" (")[0] if "not valid JSON" in reason else reason
