"""The ingest rows: signed SMN notifications through a real ``cover-consumer ingest`` process
to records the broker acknowledged (``acks=all``: each 200 is a record on the topic).

1. Throughput: ``SENDERS`` clients POST pre-signed notifications as fast as answers come;
   notifications/s from the first request to the last answer.
2. Latency at a fixed rate: one notification every 1/rate s (open loop, so a slow answer
   delays none of the next sends), each answer's time measured from when it was *due*, so
   a client falling behind counts against the ingest, not for it; the p99 of those.

Signing happens before the clock starts (it is SMN's work, not the ingest's). Afterwards
every notification must be on the topic exactly once, by message id, or the row fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import psutil

from consumer.devtools.bench.common import Bench, BenchError, say
from consumer.devtools.broker import create_topic, fetch_all, free_port
from consumer.devtools.harness import DaemonProcess, clean_env
from consumer.devtools.simulator.notify import SmnSigner

__all__ = ["GOAL_P99_MS", "IngestRun", "run_ingest"]

SENDERS = 32
PARTITIONS = 8
GOAL_P99_MS = 100.0
TOPIC_URN = "urn:smn:cn-north-4:bench:vod-events"


@dataclass(frozen=True)
class IngestRun:
    rate: float  # notifications/s, closed loop
    cpu_share: float  # of one core, the ingest process, during the closed loop
    offered: float  # notifications/s asked for in the latency run
    achieved: float  # notifications/s answered in it
    p50_ms: float
    p99_ms: float
    max_ms: float


def run_ingest(bench: Bench, notifications: int, rate: float, seconds: float) -> IngestRun:
    return asyncio.run(_run(bench, notifications, rate, seconds))


async def _run(bench: Bench, notifications: int, rate: float, seconds: float) -> IngestRun:
    topic = bench.name("ingest")
    await create_topic(bench.bootstrap, topic, PARTITIONS)
    signer = SmnSigner(topic_urn=TOPIC_URN)
    paced = int(rate * seconds)
    say(f"ingest: signing {notifications + paced:,} SMN notifications")
    bodies = [_signed(signer, i) for i in range(notifications + paced)]
    port = free_port()
    config = bench.work / "ingest.yaml"
    config.write_text(json.dumps(_config(bench, topic, port, signer)))
    process = DaemonProcess(
        bench.work / "ingest.out",
        clean_env(bench.work / "no-secrets"),
        config,
        stderr=bench.work / "ingest.err",
        command="ingest",
    )
    connector = aiohttp.TCPConnector(limit=SENDERS)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            url = f"http://127.0.0.1:{port}/smn"
            try:
                await process.until_ready(http, port, 60)
            except RuntimeError as exc:
                raise BenchError(str(exc)) from None
            cpu = psutil.Process(process.pid)
            began_cpu = sum(cpu.cpu_times()[:2])
            throughput = await _closed_loop(http, url, bodies[:notifications])
            cpu_share = (sum(cpu.cpu_times()[:2]) - began_cpu) / (notifications / throughput)
            say(f"ingest: {throughput:,.0f} notifications/s, {cpu_share:.0%} of a core")
            latencies, achieved = await _open_loop(http, url, bodies[notifications:], rate)
        code, _ = await asyncio.to_thread(process.terminate, 30)
    finally:
        process.kill()
    if code != 0:
        bench.problems.append(f"ingest exited with {code} after SIGTERM")
    await _verify(bench, topic, bodies)
    latencies.sort()
    run = IngestRun(
        throughput,
        cpu_share,
        rate,
        achieved,
        _quantile(latencies, 0.50) * 1000,
        _quantile(latencies, 0.99) * 1000,
        latencies[-1] * 1000,
    )
    say(f"ingest at {rate:,.0f}/s: p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms")
    return run


def _signed(signer: SmnSigner, seq: int) -> tuple[str, bytes, dict[str, str]]:
    asset = f"{seq % 1000:032x}"
    event = {
        "event_type": "coverComplete",
        "cover_info": {
            "asset_id": asset,
            "status": "SUCCEED",
            "title": f"upload-{seq:07d}.mp4",
            "cover_type": "HEAD_FRAME_COVER",
            "cover_urls": [{"offset": 0, "url": f"https://cdn.example/{asset}/Cover0.jpg"}],
        },
    }
    envelope = signer.envelope(json.dumps(event))
    return envelope["message_id"], json.dumps(envelope).encode(), SmnSigner.headers(envelope)


def _config(bench: Bench, topic: str, port: int, signer: SmnSigner) -> dict[str, object]:
    cert = signer.write_certificate(bench.work / "bench-smn.pem")
    return {
        "kafka": {"bootstrap_servers": bench.bootstrap, "topic": topic},
        "log": {"format": "json", "level": "INFO"},
        "ingest": {
            "port": port,
            # One source sends everything here: the per-source limit is not what is measured.
            "rate_per_source": 1_000_000,
            "burst_per_source": 1_000_000,
            "smn": {"certificates": [str(cert)], "topic_urns": [TOPIC_URN]},
        },
    }


async def _post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> int:
    async with http.post(url, data=body, headers=headers) as answer:
        await answer.read()
        return answer.status


async def _closed_loop(
    http: aiohttp.ClientSession, url: str, bodies: list[tuple[str, bytes, dict[str, str]]]
) -> float:
    queue = iter(bodies)
    statuses: Counter[int] = Counter()

    async def sender() -> None:
        for _, body, headers in queue:
            statuses[await _post(http, url, body, headers)] += 1

    began = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    seconds = time.perf_counter() - began
    if set(statuses) != {200}:
        raise BenchError(f"ingest answered {dict(statuses)} to valid notifications")
    return len(bodies) / seconds


async def _open_loop(
    http: aiohttp.ClientSession,
    url: str,
    bodies: list[tuple[str, bytes, dict[str, str]]],
    rate: float,
) -> tuple[list[float], float]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    began = time.perf_counter()

    async def one(due: float, body: bytes, headers: dict[str, str]) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        statuses[await _post(http, url, body, headers)] += 1
        latencies.append(time.perf_counter() - due)

    await asyncio.gather(
        *(one(began + i / rate, body, headers) for i, (_, body, headers) in enumerate(bodies))
    )
    seconds = time.perf_counter() - began
    if set(statuses) != {200}:
        raise BenchError(f"ingest answered {dict(statuses)} to valid notifications")
    return latencies, len(bodies) / seconds


async def _verify(
    bench: Bench, topic: str, bodies: list[tuple[str, bytes, dict[str, str]]]
) -> None:
    records = await fetch_all(bench.bootstrap, topic)
    counts = Counter(
        dict(record.headers).get("ingest-message-id", b"").decode() for record in records
    )
    sent = {message_id for message_id, _, _ in bodies}
    if missing := sum(1 for m in sent if counts[m] == 0):
        bench.problems.append(f"ingest: {missing:,} answered 200 but not on the topic")
    if repeated := sum(1 for m in sent if counts[m] > 1):
        bench.problems.append(f"ingest: {repeated:,} on the topic more than once")
    if foreign := len(set(counts) - sent):
        bench.problems.append(f"ingest: {foreign:,} records nobody sent")


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
