"""Test support for the real broker: topics, producing, daemon processes, committed offsets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parent.parent

# Tansu delays a group's first join by half the session timeout: keep it at Kafka's minimum.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def cover_event(asset_id: str, status: str = "FAILED", seq: int = 0) -> bytes:
    return json.dumps(
        {
            "event_type": "coverComplete",
            "cover_info": {
                "status": status,
                "asset_id": asset_id,
                "title": f"video {seq}",
                "cover_type": "HEAD_FRAME_COVER",
                "error_code": "VOD.10013" if status == "FAILED" else None,
                "error_msg": "null",
            },
        }
    ).encode()


async def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes, int | None]]
) -> int:
    """Send (key, value, partition or None) records; return how many were acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, partition=partition)
            for key, value, partition in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def committed(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[int, int | None]:
    # aiokafka's admin list_consumer_group_offsets fails on Tansu; a consumer's committed() works.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()


def daemon_config(
    tmp: Path, bootstrap: str, topic: str, group: str, handler: str, **consumer: Any
) -> Path:
    path = tmp / f"{group}.yaml"
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": group, **FAST_GROUP},
        "consumer": {"commit_interval": 0.2, "shutdown_timeout": 10, **consumer},
        "log": {"format": "json"},
        "routes": [{"match": {}, "handlers": [handler]}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """A ``cover-consumer run`` process whose JSON log lines are read back from a file."""

    def __init__(self, config: Path, out: Path, env: dict[str, str] | None = None) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            stdout=out.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[dict[str, Any]]:
        parsed = []
        for raw in self.out.read_bytes().splitlines():
            try:
                parsed.append(json.loads(raw))
            except ValueError:
                continue  # a line cut by SIGKILL
        return parsed

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def outcomes(self) -> list[dict[str, Any]]:
        return self.events("record_processed")

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"daemon exited ({self.process.returncode}) waiting for {what}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def joined(self) -> bool:
        return bool(self.events("consumer_started"))

    def terminate(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; return (exit code, seconds until exit)."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - began

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def coordinates(lines: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(line["partition"], line["offset"]) for line in lines]
