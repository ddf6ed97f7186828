"""Test support: topics, producing, daemon processes, committed offsets, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumer.config import Settings, load_settings
from consumer.devtools.harness import FAST_GROUP, DaemonProcess, clean_env
from consumer.dispatch.routing import Router
from consumer.errors import ConfigError
from consumer.handlers import Handler
from consumer.kafka.reading import read_topic as kafka_read_topic
from consumer.service.wiring import Parts, build

REPO = Path(__file__).resolve().parent.parent


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


def start_daemon(config: Path, out: Path, env: dict[str, str] | None = None) -> DaemonProcess:
    """``cover-consumer run --config config`` with its lines in ``out``; the environment is
    this one without COVER_CONSUMER* variables, plus ``env``."""
    return DaemonProcess(out, clean_env(out.parent / "no-secrets", env), config)


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
            await parts.close_vod()


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


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``condition`` from a blocking test until it holds; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``cover-consumer *args`` as a child process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "consumer", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and text of ``GET path`` on a local port (``(0, "no answer")`` if none came):
    the probes and endpoints of a daemon or an ingest process."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode().strip()
    except OSError:
        return 0, "no answer"


def operator_report(config: Path, *args: str, tz: str = "UTC") -> str:
    """What ``cover-consumer *args --config config`` reports (it must succeed) in time zone
    ``tz``: its plain lines, aiokafka's JSON lines left out."""
    result = subprocess.run(
        [sys.executable, "-m", "consumer", *args, "--config", str(config)],
        cwd=REPO,
        env={**os.environ, "TZ": tz},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith("{"))


#: A secret the configuration tests put in files; no refusal may echo it.
CONFIG_SECRET = "s3cr3t-not-to-be-echoed"


def config_refused(tmp_path: Path, text: str) -> str:
    """The ConfigError message of a configuration file holding ``text`` (it must be one),
    checked to echo no ``CONFIG_SECRET``."""

    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert CONFIG_SECRET not in str(info.value)
    return str(info.value)


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line, parsed; fails on the first line that is not a JSON object."""
    parsed = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


# Run with AIOKAFKA_NO_EXTENSIONS=1: aiokafka's pure-Python batch builder asks each header
# key for its bytes with key.encode(), so a str subclass can hand it bytes that are not UTF-8.
_RAW_PRODUCER = """
import asyncio, json, sys
from aiokafka import AIOKafkaProducer

class RawKey(str):
    def encode(self, *args, **kwargs):
        return bytes.fromhex(self)

async def main():
    spec = json.load(sys.stdin)
    producer = AIOKafkaProducer(bootstrap_servers=spec["bootstrap"], linger_ms=200, acks="all")
    await producer.start()
    try:
        sent = [
            await producer.send(
                spec["topic"],
                bytes.fromhex(value),
                partition=0,
                headers=[(RawKey(k), bytes.fromhex(v)) for k, v in headers],
            )
            for value, headers in spec["records"]
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

asyncio.run(main())
"""


def produce_raw_header_keys(
    bootstrap: str, topic: str, records: list[tuple[bytes, list[tuple[bytes, bytes]]]]
) -> None:
    """Produce ``(value, [(header key bytes, value bytes)])`` records to partition 0 in one
    batch, header keys written as the raw bytes given (e.g. not UTF-8)."""
    spec = {
        "bootstrap": bootstrap,
        "topic": topic,
        "records": [
            (value.hex(), [(k.hex(), v.hex()) for k, v in headers]) for value, headers in records
        ],
    }
    subprocess.run(
        [sys.executable, "-c", _RAW_PRODUCER],
        input=json.dumps(spec),
        text=True,
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"},
        check=True,
        timeout=60,
    )
