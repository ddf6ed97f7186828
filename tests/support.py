"""Test support for the real broker: topics, producing, daemon processes, committed offsets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import structlog
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.config import Settings
from consumer.handlers import Handler
from consumer.kafka import read_topic as kafka_read_topic
from consumer.routing import Router
from consumer.wiring import Parts, build

REPO = Path(__file__).resolve().parent.parent

# Tansu delays a group's first join by half the session timeout: keep it at Kafka's minimum.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


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
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes, int | None]],
    max_request_size: int = 2**20,
) -> int:
    """Send (key, value, partition or None) records; return how many were acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=max_request_size
    )
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
    extra = consumer.pop("extra", {})
    config = {
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": group, **FAST_GROUP},
        "consumer": {"commit_interval": 0.2, "shutdown_timeout": 10, **consumer},
        "log": {"format": "json"},
        "routes": [{"match": {}, "handlers": [handler]}],
        "http": {"port": 0},  # several daemons run at once: none may take a fixed port
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """A ``cover-consumer run`` process whose JSON log lines are read back from a file."""

    #: Every daemon started, so a test that fails half-way cannot leave one running.
    started: ClassVar[list[Daemon]] = []

    def __init__(self, config: Path, out: Path, env: dict[str, str] | None = None) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            stdout=out.open("wb"),
            stderr=subprocess.STDOUT,
        )
        Daemon.started.append(self)

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


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` now (no group)."""
    return [r async for r in kafka_read_topic({"bootstrap_servers": bootstrap}, topic)]


def header_map(record: Any) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}


class Proxy:
    """A TCP proxy in a thread of its own, to cut the daemon off its broker and back."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.port, self._target = listen_port, target_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def up(self) -> None:
        self._call(self._up())

    def down(self) -> None:
        """Refuse new connections and cut the open ones, like a broker that died."""
        self._call(self._down())

    async def _up(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def _down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_writer}
        await asyncio.gather(
            self._copy(reader, up_writer), self._copy(up_reader, writer), return_exceptions=True
        )

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._pipes.discard(writer)


@asynccontextmanager
async def in_process(settings: Settings, handlers: dict[str, Handler]) -> AsyncIterator[Parts]:
    """The daemon's parts running in this process; routes name handlers of ``handlers``."""
    router = Router.from_specs(settings.routes, resolve_handler=handlers.__getitem__)
    async with aiohttp.ClientSession() as http:
        parts = build(settings, router, http, structlog.get_logger())
        await parts.start()
        task = asyncio.create_task(parts.engine.run())
        try:
            yield parts
        finally:
            task.cancel()
            await parts.engine.shutdown(5)
            await parts.source.close(5)
            await parts.sink.close(5)


def settings_for(bootstrap: str, topic: str, *handlers: str, **sections: Any) -> Settings:
    """Settings for a test topic/group named ``topic``, one catch-all route to ``handlers``."""
    return Settings(
        kafka={"bootstrap_servers": bootstrap, "topic": topic, "group_id": topic, **FAST_GROUP},
        consumer={"commit_interval": 0.1, **sections.pop("consumer", {})},
        routes=[{"match": {}, "handlers": list(handlers)}],
        **sections,
    )


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
