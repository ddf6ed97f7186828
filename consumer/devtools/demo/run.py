"""The demo's run: the broker, the simulator in this process, the ingest and the daemon as
child processes with no config file, the seed pushed through the ingest, then waiting
until every record on the topic has its outcome."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import secrets
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

from consumer.config import KafkaSettings, Settings
from consumer.devtools.broker import EmbeddedBroker, fetch_all, free_port
from consumer.devtools.demo.announce import Pushed, push_seed
from consumer.devtools.demo.follow import IngestLog, Progress
from consumer.devtools.demo.report import Report
from consumer.devtools.demo.scenario import (
    ACCESS_KEY,
    COVER_DELAY,
    LOST_ANSWERS,
    PROJECT,
    QUOTAS,
    RETRY_DELAYS,
    SMN_TOPIC,
    TASK_DELAY,
    TASK_FAILURE_RATE,
    TIERS,
    daemon_env,
    ingest_env,
    shown,
)
from consumer.devtools.demo.seed import Plan, seed_assets
from consumer.devtools.harness import DaemonProcess, clean_env
from consumer.devtools.simulator.app import run_simulator
from consumer.devtools.simulator.notify import Pusher, SmnSigner, TaskAnnouncer
from consumer.redelivery.ops import ensure_topics
from consumer.redelivery.topology import Topology
from consumer.testing.vodsim import SimState

__all__ = ["main"]

TIMEOUT_S = 90.0  # from the daemon's start to the last outcome
STOP_TIMEOUT_S = 40.0  # SIGTERM to exit
PROGRESS_EVERY_S = 3.0


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="cover-consumer demo",
        description="The whole loop on embedded defaults: a broker, the VOD simulator, "
        "about a thousand events, the daemon; then what happened and the demo's checks.",
    ).parse_args(argv)
    began = time.monotonic()
    broker = EmbeddedBroker()
    with broker as bootstrap, tempfile.TemporaryDirectory(prefix="cover-demo-") as tmp:
        # Against a shared broker ($KAFKA_BOOTSTRAP_SERVERS): fresh topics and group.
        suffix = f".demo-{uuid.uuid4().hex[:8]}" if broker.external else ""
        return asyncio.run(_demo(bootstrap, suffix, Path(tmp), began))


async def _demo(bootstrap: str, suffix: str, tmp: Path, began: float) -> int:
    defaults = KafkaSettings()
    topic, group = defaults.topic + suffix, defaults.group_id + suffix
    names = {"KAFKA__TOPIC": topic, "KAFKA__GROUP_ID": group} if suffix else {}
    # The daemon's topology, as `cover-consumer topics ensure` would create it.
    settings = Settings.model_validate(
        {
            "kafka": {"bootstrap_servers": bootstrap, "topic": topic, "group_id": group},
            "retry": {"tiers": TIERS},
            "topics": {"partitions": 3, "replication_factor": 1},
        }
    )
    topology = Topology.from_settings(settings)
    await ensure_topics(settings, io.StringIO())
    print(f"broker {bootstrap}: topics {', '.join([*topology.consumed, topology.dead_letter])}")

    secret_key, mfs_key = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    signer = SmnSigner(topic_urn=SMN_TOPIC)
    cert = signer.write_certificate(tmp / "simulator-smn.pem")
    ingest_port = free_port()
    http = aiohttp.ClientSession()
    pusher = Pusher(http, f"http://127.0.0.1:{ingest_port}", signer, mfs_key.encode(), RETRY_DELAYS)
    announcer = TaskAnnouncer(pusher, "both")
    state = SimState(
        project_id=PROJECT,
        keys={ACCESS_KEY: secret_key},
        rng=random.Random(11),
        task_delay=TASK_DELAY,
        task_failure_rate=TASK_FAILURE_RATE,
        quotas=QUOTAS,
        on_task_done=announcer,
        cover_delay=COVER_DELAY,
    )
    # A few task requests lose their answer on the way back, as over a real network: the
    # handlers must find the task they started instead of paying for a second one.
    state.faults.lost_answer_rate = LOST_ANSWERS
    no_secrets = tmp / "no-secrets"
    # Outside the scratch directory: the logs outlive the demo, for whoever wants to read them.
    kept = Path(tempfile.gettempdir()) / "cover-demo-daemon.log"
    ingest_kept = Path(tempfile.gettempdir()) / "cover-demo-ingest.log"
    daemon: DaemonProcess | None = None
    ingest_given = ingest_env(bootstrap, ingest_port, cert, mfs_key, names)
    ingest = DaemonProcess(ingest_kept, clean_env(no_secrets, ingest_given), command="ingest")
    server = await run_simulator("127.0.0.1", 0, state)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        print(
            f"VOD simulator {server.url}: {QUOTAS.writes_per_minute} writes and "
            f"{QUOTAS.queries_per_minute} queries per {QUOTAS.window:g} s; snapshot tasks take "
            f"{TASK_DELAY:g} s, {TASK_FAILURE_RATE:.0%} of them fail; it notifies by SMN "
            "(signed with a certificate it made) and MFS (HMAC), alternately"
        )
        print(f"ingest (pid {ingest.pid}): cover-consumer ingest, no config file; by environment:")
        print(shown(ingest_given))
        ingest_log = IngestLog(ingest.log)
        await ingest.until_ready(http, ingest_port, 30)
        plan = seed_assets(state)
        pushed = await push_seed(pusher, plan, server.url)
        sent = [await producer.send(topic, v, key=k, headers=h) for k, v, h in plan.direct]
        await asyncio.gather(*sent)
        _print_seed(plan, pushed)

        given = daemon_env(bootstrap, server.url, secret_key, names)
        # The demo shows the defaults, not this shell's COVER_CONSUMER* settings.
        daemon = DaemonProcess(kept, clean_env(no_secrets, given))
        started = time.monotonic()
        print(f"daemon (pid {daemon.pid}): cover-consumer run, no config file; by environment:")
        print(shown(given))
        progress = Progress(daemon.log)
        settled = await _wait(progress, ingest_log, state, announcer, plan, daemon, kept)
        processing = time.monotonic() - started
        code = await _stop(daemon)
        ingest_code = await _stop(ingest)
        progress.poll()
        ingest_log.poll()
        letters = await fetch_all(bootstrap, topology.dead_letter)
        records = await fetch_all(bootstrap, topology.main)
    finally:
        for process in (daemon, ingest):
            if process is not None:
                process.kill()
        await server.stop()
        await producer.stop()
        await http.close()

    output = b"".join(path.read_bytes() for path in (kept, ingest_kept))
    leaked = any(secret.encode() in output for secret in (secret_key, mfs_key))
    report = Report(plan, state, announcer, progress, letters, topology, QUOTAS, code, settled)
    report.with_ingest(ingest_log, pushed, records, ingest_code, leaked)
    report.print_summary(processing, time.monotonic() - began)
    failed = report.checks()
    print(f"\nthe logs (every line written) are kept: the daemon's in {kept}, the ingest's in")
    print(f"  {ingest_kept}")
    if failed:
        print(f"\n{failed} check(s) failed")
        for line in [*progress.notable, *ingest_log.notable][:10]:
            print(f"  {json.dumps(line)[:300]}")
    return 1 if failed else 0


def _print_seed(plan: Plan, pushed: Pushed) -> None:
    print(
        f"seeded {len(plan.covered) + len(plan.failed)} assets; pushed "
        f"{pushed.smn + pushed.mfs} notifications to the ingest ({pushed.smn} by SMN, "
        f"{pushed.mfs} by MFS), {pushed.count('forged')} forged, "
        f"{pushed.count('redelivered')} SMN redeliveries and 2 subscription confirmations; "
        f"wrote {len(plan.direct)} records straight to the topic:"
    )
    for kind, count in plan.mix.most_common():
        via = ", ".join(
            f"{plan.via[kind, t]} {t.upper() if t != 'topic' else 'to the topic'}"
            for t in ("smn", "mfs", "topic")
            if plan.via[kind, t]
        )
        print(f"  {count:>5}  {kind} ({via})")


async def _stop(process: DaemonProcess) -> int:
    if process.process.poll() is not None:
        return process.process.returncode
    process.process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(process.process.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"pid {process.pid} still running {STOP_TIMEOUT_S:g} s after SIGTERM: killed")
        process.kill()
        return -signal.SIGKILL


async def _wait(
    progress: Progress,
    ingest: IngestLog,
    state: SimState,
    announcer: TaskAnnouncer,
    plan: Plan,
    daemon: DaemonProcess,
    kept: Path,
) -> bool:
    """Until every record on the main topic (forwarded by the ingest, or written straight
    to it) has its final outcome line, and no snapshot task is running nor announcement
    on its way (either would bring more). Whatever tiers a record went through, its
    journey ends in exactly one final line (done, skipped or dead_lettered)."""
    began = time.monotonic()
    report_at = began + PROGRESS_EVERY_S
    quiet, joined = 0, False
    while daemon.process.poll() is None:
        await asyncio.sleep(0.25)
        progress.poll()
        ingest.poll()
        now = time.monotonic()
        expected = ingest.forwarded + len(plan.direct)
        tasks = sum(1 for asset in list(state.assets.values()) if asset.running_task)
        if not joined and progress.events["consumer_started"]:
            joined = True
            print(f"  {now - began:5.1f}s  the daemon joined its group")
            if progress.side_port is not None:
                base = f"http://127.0.0.1:{progress.side_port}"
                print(f"          while it runs: {base}/metrics, {base}/readyz; log {kept}")
        # Three polls in a row with nothing left: no announcement is on its way either.
        done = progress.finals >= expected and not tasks and not announcer.busy
        quiet = quiet + 1 if done else 0
        if quiet >= 3:
            print(f"  {now - began:5.1f}s  all {expected} records have their final outcome")
            return True
        if now - began > TIMEOUT_S:
            print(
                f"  {now - began:5.1f}s  timed out: {progress.finals} of {expected} records final"
            )
            return False
        if now >= report_at:
            report_at = now + PROGRESS_EVERY_S
            covers = sum(1 for a in plan.failed if state.assets[a].cover_url is not None)
            print(
                f"  {now - began:5.1f}s  {progress.finals}/{expected} records final "
                f"({progress.count('retried')} trips to a retry tier so far); "
                f"covers {covers}/{len(plan.failed)}; VOD writes "
                f"{len(state.received['write'])}, queries {len(state.received['query'])}, "
                f"throttled {state.throttled}; snapshot tasks running {tasks}; "
                f"ingest forwarded {ingest.forwarded}"
            )
    print(f"  the daemon exited early, code {daemon.process.returncode}")
    return False
