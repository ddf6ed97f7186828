"""The demo's run: the broker, the simulator in this process, the seed, the daemon as a
child process with no config file, then waiting until every record has its outcome."""

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
import textwrap
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from consumer.config import KafkaSettings, Settings
from consumer.devtools.broker import EmbeddedBroker
from consumer.devtools.demo.announce import Publisher
from consumer.devtools.demo.report import Progress, Report
from consumer.devtools.demo.seed import Plan, seed_assets
from consumer.devtools.harness import FAST_GROUP, DaemonProcess, clean_env
from consumer.devtools.simulator.app import run_simulator
from consumer.kafka.reading import read_topic
from consumer.redelivery.ops import ensure_topics
from consumer.redelivery.topology import Topology
from consumer.testing.vodsim import Quotas, SimState

__all__ = ["main"]

TIMEOUT_S = 90.0  # from the daemon's start to the last outcome
STOP_TIMEOUT_S = 40.0  # SIGTERM to exit
PROGRESS_EVERY_S = 3.0

PROJECT = "demo-project"
ACCESS_KEY = "demo-access-key"
QUOTAS = Quotas(writes_per_minute=100, queries_per_minute=1500, window=6.0)
TASK_DELAY = 0.5
TASK_FAILURE_RATE = 0.2
COVER_DELAY = 1.0  # VOD's 3-5 minutes, scaled down: a set cover shows this much later
LOST_ANSWERS = 0.05
TIERS = [{"delay": 2}, {"delay": 5}]


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


def _settings_env(
    bootstrap: str, vod_url: str, secret_key: str, names: dict[str, str]
) -> dict[str, str]:
    """Embedded defaults, but for where things are and the time scale."""
    settings = {
        "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        **{f"KAFKA__{key.upper()}": str(value) for key, value in FAST_GROUP.items()},
        "HTTP__PORT": "0",  # any free port: the demo must not collide with anything
        "VOD__ENDPOINT": vod_url,
        "VOD__PROJECT_ID": PROJECT,
        "VOD__ACCESS_KEY": ACCESS_KEY,
        "VOD__SECRET_KEY": secret_key,
        "VOD__QUOTA_WINDOW": f"{QUOTAS.window:g}",  # the simulator's window
        "VOD__CIRCUIT_PROBE_INTERVAL": "1",
        "RETRY__TIERS": json.dumps(TIERS),
        # Shorter than the "retry after" of the cover handlers: they wait in a tier.
        "RETRY__QUICK_BUDGET": "0.5",
        "COVERS__REGENERATE_CHECK_DELAY": "1.5",
        "COVERS__SNAPSHOT_RETRY_AFTER": "1",
        "COVERS__VERIFY_DELAY": "1.5",
        "CONSUMER__SHUTDOWN_TIMEOUT": "10",
        **names,
    }
    return {f"COVER_CONSUMER__{key}": value for key, value in settings.items()}


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

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    publisher = Publisher(producer, topology.main)
    secret_key = secrets.token_urlsafe(24)
    state = SimState(
        project_id=PROJECT,
        keys={ACCESS_KEY: secret_key},
        rng=random.Random(11),
        task_delay=TASK_DELAY,
        task_failure_rate=TASK_FAILURE_RATE,
        quotas=QUOTAS,
        on_task_done=publisher,
        cover_delay=COVER_DELAY,
    )
    # A few task requests lose their answer on the way back, as over a real network: the
    # handlers must find the task they started instead of paying for a second one.
    state.faults.lost_answer_rate = LOST_ANSWERS
    # Outside the scratch directory: the log outlives the demo, for whoever wants to read it.
    out = kept = Path(tempfile.gettempdir()) / "cover-demo-daemon.log"
    daemon: DaemonProcess | None = None
    server = await run_simulator("127.0.0.1", 0, state)
    try:
        print(
            f"VOD simulator {server.url}: {QUOTAS.writes_per_minute} writes and "
            f"{QUOTAS.queries_per_minute} queries per {QUOTAS.window:g} s; snapshot tasks take "
            f"{TASK_DELAY:g} s, {TASK_FAILURE_RATE:.0%} of them fail"
        )
        plan = seed_assets(state)
        futures = [await producer.send(topic, value, key=key) for key, value in plan.events]
        await asyncio.gather(*futures)
        print(f"seeded {len(state.assets)} assets and produced {len(plan.events)} events:")
        for kind, count in plan.mix.most_common():
            smn = plan.in_smn[kind]
            print(f"  {count:>5}  {kind}" + (f" ({smn} in an SMN envelope)" if smn else ""))

        given = _settings_env(bootstrap, server.url, secret_key, names)
        # The demo shows the defaults, not this shell's COVER_CONSUMER* settings.
        daemon = DaemonProcess(out, clean_env(tmp / "no-secrets", given))
        started = time.monotonic()
        print(f"daemon (pid {daemon.pid}): cover-consumer run, no config file; by environment:")
        shown = [
            f"{key.removeprefix('COVER_CONSUMER__')}={'***' if 'SECRET' in key else value}"
            for key, value in given.items()
        ]
        print(textwrap.fill(", ".join(shown), 96, initial_indent="  ", subsequent_indent="  "))
        progress = Progress(daemon.log)
        settled = await _wait(progress, state, publisher, plan, daemon, kept)
        processing = time.monotonic() - started
        code = await _stop(daemon)
        progress.poll()
        letters = [
            r async for r in read_topic({"bootstrap_servers": bootstrap}, topology.dead_letter)
        ]
    finally:
        if daemon is not None:
            daemon.kill()
        await server.stop()
        await producer.stop()

    leaked = secret_key.encode() in out.read_bytes()
    report = Report(
        plan, state, publisher, progress, letters, topology, QUOTAS, code, settled, leaked
    )
    report.print_summary(processing, time.monotonic() - began)
    failed = report.checks()
    print(f"\nthe daemon's log (every line it wrote) is kept in {kept}")
    if failed:
        print(f"\n{failed} check(s) failed")
        for line in progress.notable[:10]:
            print(f"  {json.dumps(line)[:300]}")
    return 1 if failed else 0


async def _stop(daemon: DaemonProcess) -> int:
    if daemon.process.poll() is not None:
        return daemon.process.returncode
    daemon.process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(daemon.process.wait, STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"daemon still running {STOP_TIMEOUT_S:g} s after SIGTERM: killed")
        daemon.kill()
        return -signal.SIGKILL


async def _wait(
    progress: Progress,
    state: SimState,
    publisher: Publisher,
    plan: Plan,
    daemon: DaemonProcess,
    kept: Path,
) -> bool:
    """Until every record produced to the main topic (seeded, or announced by the
    simulator) has its final outcome line, and no snapshot task is running (it would
    announce more). Whatever tiers a record went through, its journey ends in exactly
    one final line (done, skipped or dead_lettered); ``retried`` lines are steps."""
    began = time.monotonic()
    report_at = began + PROGRESS_EVERY_S
    quiet, joined = 0, False
    while daemon.process.poll() is None:
        await asyncio.sleep(0.25)
        progress.poll()
        now = time.monotonic()
        expected = len(plan.events) + publisher.total
        tasks = sum(1 for asset in list(state.assets.values()) if asset.running_task)
        if not joined and progress.events["consumer_started"]:
            joined = True
            print(f"  {now - began:5.1f}s  the daemon joined its group")
            if progress.side_port is not None:
                base = f"http://127.0.0.1:{progress.side_port}"
                print(f"          while it runs: {base}/metrics, {base}/readyz; log {kept}")
        # Three polls in a row with nothing left: no announcement is on its way either.
        done = progress.finals >= expected and not tasks and not publisher.busy
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
                f"throttled {state.throttled}; snapshot tasks running {tasks}"
            )
    print(f"  the daemon exited early, code {daemon.process.returncode}")
    return False
