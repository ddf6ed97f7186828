"""``make demo``: the whole loop on embedded defaults, well within a minute.

Starts Tansu and the VOD simulator (in this process), seeds about 600 assets and a
thousand events shaped like VOD's traffic, runs ``cover-consumer run`` with no config
file (only the broker, VOD's address and keys, and the time scale are set, by
environment), waits until every record has its final outcome, stops the daemon with
SIGTERM and prints what happened. Then it checks its own claims and exits 1, naming
the check, when one fails.

Time is scaled down, not the logic: the simulator counts its quotas over 6 s instead
of a minute (the daemon is told the same, so it paces itself to 100 writes per 6 s),
snapshot tasks take 0.5 s and a fifth of them fail, retry tiers wait 2 s and 5 s, and
a regenerated cover is checked 1.5 s after asking for it. Like VOD, the simulator
announces every finished snapshot task on the topic (``thumbnailComplete``, and
``coverComplete`` when the task set a cover); the daemon consumes those too.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import secrets
import signal
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from consumer import headers as h
from consumer.config import KafkaSettings, Settings
from consumer.devtools.broker import EmbeddedBroker
from consumer.errors import RecordError
from consumer.events import decode
from consumer.kafka import read_topic
from consumer.ops import ensure_topics
from consumer.topology import Topology
from consumer.vod.simstate import QuotaGroup, Quotas, SimState, TaskDone
from consumer.vod.simulator import run_simulator

__all__ = ["Plan", "main", "seed_assets"]

TIMEOUT_S = 90.0  # from the daemon's start to the last outcome
STOP_TIMEOUT_S = 40.0  # SIGTERM to exit
PROGRESS_EVERY_S = 3.0

PROJECT = "demo-project"
ACCESS_KEY = "demo-access-key"
QUOTAS = Quotas(writes_per_minute=100, queries_per_minute=1500, window=6.0)
TASK_DELAY = 0.5
TASK_FAILURE_RATE = 0.2
TIERS = [{"delay": 2}, {"delay": 5}]
MAX_THROTTLED = 5  # "a handful": the daemon paces itself to the quota

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

_FINAL = frozenset({"done", "skipped", "dead_lettered"})
_OUTCOMES = ("done", "skipped", "retried", "dead_lettered")
_HANDLERS = ("log", "regenerate_head_frame", "fallback_cover", "fallback_on_thumbnails")


# ---------------------------------------------------------------------------- the seed


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


# ------------------------------------------------------------------- the simulator side


@dataclass
class _DemoState(SimState):
    """The simulator's state, also remembering when each admitted request came in."""

    admitted: dict[str, list[float]] = field(default_factory=lambda: {"write": [], "query": []})

    def admit(self, tenant: str, group: QuotaGroup) -> bool:
        ok = super().admit(tenant, group)
        if ok:
            self.admitted[group].append(self.clock())
        return ok


class _Publisher:
    """``on_task_done``: announce a finished snapshot task on the topic, as VOD does."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self.sent: Counter[str] = Counter()
        self.busy = 0

    async def __call__(self, done: TaskDone) -> None:
        self.busy += 1  # before the first await: the task is no longer "running"
        try:
            for kind, body in _task_events(done):
                value = json.dumps(body).encode()
                await self._producer.send_and_wait(self._topic, value, key=done.asset_id.encode())
                self.sent[kind] += 1
        finally:
            self.busy -= 1

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def _task_events(done: TaskDone) -> list[tuple[str, dict[str, Any]]]:
    info: dict[str, Any] = {
        "asset_id": done.asset_id,
        "task_id": done.task_id,
        "status": "SUCCEED" if done.succeeded else "FAILED",
    }
    if not done.succeeded:
        info |= {"error_code": done.error_code, "error_msg": done.error_msg}
    for snap in done.snapshots:
        kind = _snapshot_kind(snap.url)
        info.setdefault(kind, []).append(snap.model_dump())
    events = [("thumbnailComplete", {"event_type": "thumbnailComplete", "thumbnail_info": info})]
    if done.succeeded and done.cover_url:
        cover = {
            "asset_id": done.asset_id,
            "status": "SUCCEED",
            "cover_type": "HEAD_FRAME_COVER",
            "cover_urls": [{"offset": 0, "url": done.cover_url}],
        }
        events.append(("coverComplete", {"event_type": "coverComplete", "cover_info": cover}))
    return events


def _snapshot_kind(url: str) -> str:
    for kind in ("sample", "dots", "quantity"):
        if f"/snapshot/{kind}/" in url:
            return kind
    return "dots"


def _cover_origin(source: str | None) -> str:
    """How an asset got its cover, from the snapshot the simulator set it from."""
    if source is None:
        return "none"
    if "/snapshot/dots/0." in source:
        return "regenerated"
    if "/snapshot/sample/" in source:
        return "fallback: existing snapshot"
    return "fallback: requested snapshots"


# ---------------------------------------------------------------------- the daemon side


class _DaemonLog:
    """The daemon's JSON lines, read incrementally from its output file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._tail = b""
        self.outcomes: list[dict[str, Any]] = []
        self.events: Counter[str] = Counter()
        self.notable: list[dict[str, Any]] = []
        self.finals = 0

    def poll(self) -> None:
        with self.path.open("rb") as out:
            out.seek(self._offset)
            data = out.read()
        self._offset += len(data)
        *lines, self._tail = (self._tail + data).split(b"\n")
        for raw in lines:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict):
                continue
            name = str(line.get("event"))
            self.events[name] += 1
            if name == "record_processed":
                self.outcomes.append(line)
                self.finals += line.get("outcome") in _FINAL
            elif line.get("level") in ("warning", "error", "critical"):
                self.notable.append(line)

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.outcomes if line.get("outcome") == outcome)


def _daemon_env(
    bootstrap: str, vod_url: str, secret_key: str, secrets_dir: Path, names: dict[str, str]
) -> dict[str, str]:
    """Embedded defaults, but for where things are and the time scale. Inherited
    COVER_CONSUMER* variables are dropped: the demo shows the defaults, not this shell."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("COVER_CONSUMER")}
    prefix = "COVER_CONSUMER__"
    settings = {
        "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        # Tansu delays a group's first join by half the session timeout.
        "KAFKA__SESSION_TIMEOUT_MS": "6000",
        "KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
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
        "CONSUMER__SHUTDOWN_TIMEOUT": "10",
        **names,
    }
    env.update({prefix + key: value for key, value in settings.items()})
    env["COVER_CONSUMER_SECRETS_DIR"] = str(secrets_dir)  # empty: no host secrets
    return env


# ------------------------------------------------------------------------------- main


def main() -> int:
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

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    publisher = _Publisher(producer, topology.main)
    secret_key = secrets.token_urlsafe(24)
    state = _DemoState(
        project_id=PROJECT,
        keys={ACCESS_KEY: secret_key},
        rng=random.Random(11),
        task_delay=TASK_DELAY,
        task_failure_rate=TASK_FAILURE_RATE,
        quotas=QUOTAS,
        on_task_done=publisher,
    )
    out = tmp / "daemon.log"
    daemon: asyncio.subprocess.Process | None = None
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

        secrets_dir = tmp / "secrets"
        secrets_dir.mkdir()
        env = _daemon_env(bootstrap, server.url, secret_key, secrets_dir, names)
        given = [
            f"{key.removeprefix('COVER_CONSUMER__')}={'***' if 'SECRET' in key else value}"
            for key, value in env.items()
            if key.startswith("COVER_CONSUMER__")
        ]
        with out.open("wb") as sink:
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "consumer", "run", env=env, stdout=sink, stderr=sink
            )
        started = time.monotonic()
        print(f"daemon (pid {daemon.pid}): cover-consumer run, no config file; by environment:")
        print(textwrap.fill(", ".join(given), 96, initial_indent="  ", subsequent_indent="  "))
        log = _DaemonLog(out)
        settled = await _wait(log, state, publisher, plan, daemon)
        processing = time.monotonic() - started
        code = await _stop(daemon)
        log.poll()
        letters = [
            r async for r in read_topic({"bootstrap_servers": bootstrap}, topology.dead_letter)
        ]
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.kill()
            await daemon.wait()
        await server.stop()
        await producer.stop()

    leaked = secret_key.encode() in out.read_bytes()
    report = _Report(plan, state, publisher, log, letters, topology, code, settled, leaked)
    report.print_summary(processing, time.monotonic() - began)
    failed = report.checks()
    if failed:
        kept = Path(tempfile.gettempdir()) / "cover-demo-daemon.log"
        kept.write_bytes(out.read_bytes())
        print(f"\n{failed} check(s) failed; the daemon's output is in {kept}")
        for line in log.notable[:10]:
            print(f"  {json.dumps(line)[:300]}")
    return 1 if failed else 0


async def _stop(daemon: asyncio.subprocess.Process) -> int:
    if daemon.returncode is not None:
        return daemon.returncode
    daemon.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(daemon.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        print(f"daemon still running {STOP_TIMEOUT_S:g} s after SIGTERM: killed")
        daemon.kill()
        await daemon.wait()
        return -signal.SIGKILL


async def _wait(
    log: _DaemonLog,
    state: _DemoState,
    publisher: _Publisher,
    plan: Plan,
    daemon: asyncio.subprocess.Process,
) -> bool:
    """Until every record produced to the main topic (seeded, or announced by the
    simulator) has its final outcome line, and no snapshot task is running (it would
    announce more). Whatever tiers a record went through, its journey ends in exactly
    one final line (done, skipped or dead_lettered); ``retried`` lines are steps."""
    began = time.monotonic()
    report_at = began + PROGRESS_EVERY_S
    quiet, joined = 0, False
    while daemon.returncode is None:
        await asyncio.sleep(0.25)
        log.poll()
        now = time.monotonic()
        expected = len(plan.events) + publisher.total
        tasks = sum(1 for asset in list(state.assets.values()) if asset.running_task)
        if not joined and log.events["consumer_started"]:
            joined = True
            print(f"  {now - began:5.1f}s  the daemon joined its group")
        # Three polls in a row with nothing left: no announcement is on its way either.
        quiet = quiet + 1 if log.finals >= expected and not tasks and not publisher.busy else 0
        if quiet >= 3:
            print(f"  {now - began:5.1f}s  all {expected} records have their final outcome")
            return True
        if now - began > TIMEOUT_S:
            print(f"  {now - began:5.1f}s  timed out: {log.finals} of {expected} records final")
            return False
        if now >= report_at:
            report_at = now + PROGRESS_EVERY_S
            covers = sum(1 for a in plan.failed if state.assets[a].cover_url is not None)
            print(
                f"  {now - began:5.1f}s  {log.finals}/{expected} records final "
                f"({log.count('retried')} trips to a retry tier so far); "
                f"covers {covers}/{len(plan.failed)}; VOD writes "
                f"{len(state.admitted['write'])}, queries {len(state.admitted['query'])}, "
                f"throttled {state.throttled}; snapshot tasks running {tasks}"
            )
    print(f"  the daemon exited early, code {daemon.returncode}")
    return False


# ----------------------------------------------------------------------------- report


def _max_in_window(times: list[float], window: float) -> int:
    """The most requests the simulator counted in one window: (t - window, t]."""
    ordered, best, start = sorted(times), 0, 0
    for end, now in enumerate(ordered):
        while ordered[start] <= now - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _short(reason: str) -> str:
    # JSON parser messages differ by byte position: group them by kind.
    return reason.split(" (")[0] if "not valid JSON" in reason else reason


def _letter_asset(record: Any) -> str | None:
    try:
        return decode(record.value).asset_id
    except RecordError:
        return None


class _Report:
    def __init__(
        self,
        plan: Plan,
        state: _DemoState,
        publisher: _Publisher,
        log: _DaemonLog,
        letters: list[Any],
        topology: Topology,
        code: int,
        settled: bool,
        leaked: bool,
    ) -> None:
        self.plan, self.state, self.publisher, self.log = plan, state, publisher, log
        self.letters, self.topology, self.code, self.settled = letters, topology, code, settled
        self.leaked = leaked
        self.reasons = {id(r): h.header(r.headers, h.REASON) or "" for r in letters}
        self.letter_assets: dict[str, list[str]] = {}
        for record in letters:
            asset = _letter_asset(record)
            if asset is not None:
                self.letter_assets.setdefault(asset, []).append(self.reasons[id(record)])
        self.expected = len(plan.events) + publisher.total

    def ending(self, asset: str) -> str:
        sim = self.state.assets[asset]
        if sim.cover_url is not None:
            return _cover_origin(sim.cover_source)
        if any(self.letter_assets.get(asset, ())):
            return "no cover: dead-lettered, with the reason"
        return "no cover and no dead letter"

    def print_summary(self, processing: float, elapsed: float) -> None:
        plan, state, log = self.plan, self.state, self.log
        print("\n=== what happened ===")
        published = ", ".join(f"{kind} {n}" for kind, n in sorted(self.publisher.sent.items()))
        print(
            f"\nrecords: {len(plan.events)} seeded + {self.publisher.total} announced by the "
            f"simulator ({published or 'none'}); {log.finals} of {self.expected} have their "
            f"final outcome; {log.count('retried')} trips to a retry tier on the way"
        )

        print("\noutcome lines per handler ('retried': to a retry tier, it comes back):")
        table = Counter((line.get("handler") or "-", line.get("outcome")) for line in log.outcomes)
        handlers = [*_HANDLERS, *sorted({hd for hd, _ in table} - {*_HANDLERS, "-"}), "-"]
        print(f"  {'handler':<24}" + "".join(f"{o:>15}" for o in _OUTCOMES))
        for handler in handlers:
            if any(table[handler, o] for o in _OUTCOMES):
                row = "".join(f"{table[handler, o]:>15}" for o in _OUTCOMES)
                print(f"  {handler:<24}{row}")
        print("  ('-': no handler ran: malformed, no route, or SMN confirmation)")

        endings = Counter(self.ending(asset) for asset in plan.failed)
        kinds = Counter((plan.failed[a], self.ending(a)) for a in plan.failed)
        print(
            f"\ncovers on the {len(plan.failed)} FAILED assets that had none "
            "(regeneration first, the fallback after it):"
        )
        for ending, count in endings.most_common():
            split = ", ".join(
                f"{kinds[k, ending]} {k}"
                for k in ("with snapshots", "without snapshots")
                if kinds[k, ending]
            )
            print(f"  {count:>5}  {ending}  ({split})")
        noted = Counter(line.get("cover") for line in log.outcomes if line.get("cover"))
        print(
            f"  outcome lines reporting a cover: regenerated {noted['regenerated']}, "
            f"fallback {noted['fallback']} (a cover set by a requested snapshot task is "
            "seen as 'cover present' on the next check)"
        )

        touched = self._touched_covered()
        looked = {
            line.get("asset_id")
            for line in log.outcomes
            if line.get("reason") == "cover present" and line.get("asset_id") in plan.covered
        }
        print(
            f"\ncovers left alone: {len(plan.covered) - len(touched)} of {len(plan.covered)} "
            f"assets that had a cover still have it, unchanged; {len(looked)} of them went "
            f"through a cover handler and were skipped as 'cover present' (of the "
            f"{len(plan.failed_covered)} FAILED ones: "
            f"{len(looked & plan.failed_covered)}); written: {len(touched)}"
        )

        reasons = Counter(_short(self.reasons[id(r)]) for r in self.letters)
        print(f"\ndead letters: {len(self.letters)} in {self.topology.dead_letter}, by reason:")
        for reason, count in reasons.most_common():
            print(f"  {count:>5}  {reason}")
        covered_since = [
            asset
            for asset in self.letter_assets
            if asset in plan.failed and state.assets[asset].cover_url is not None
        ]
        if covered_since:
            print(
                f"  ({len(covered_since)} about a FAILED asset that has a cover by now: a "
                "snapshot task requested by the last attempt, or a duplicate event, set it)"
            )

        print("\nVOD API calls (as the simulator counted them):")
        for (operation, result), count in sorted(state.calls.items()):
            print(f"  {operation:<22}{result:<12}{count:>6}")
        window = QUOTAS.window
        writes = _max_in_window(state.admitted["write"], window)
        queries = _max_in_window(state.admitted["query"], window)
        print(
            f"quota use, most in any {window:g} s window: writes {writes} of "
            f"{QUOTAS.writes_per_minute}, queries {queries} of {QUOTAS.queries_per_minute}; "
            f"throttled answers: {state.throttled}"
        )
        print(
            f"\nelapsed: {elapsed:.1f} s in all, {processing:.1f} s from starting the daemon "
            f"to the last outcome; daemon exit code {self.code}"
        )

    def _touched_covered(self) -> list[str]:
        return [
            asset
            for asset, url in self.plan.covered.items()
            if self.state.assets[asset].cover_url != url
            or self.state.assets[asset].cover_source is not None
        ]

    def checks(self) -> int:
        """Print every check; return how many failed."""
        plan, state = self.plan, self.state
        values = Counter(r.value for r in self.letters)
        reasoned = {r.value for r in self.letters if self.reasons[id(r)]}
        missing = [v for v in plan.malformed if v not in reasoned]
        bare = [a for a in plan.failed if self.ending(a) == "no cover and no dead letter"]
        touched = self._touched_covered()
        expected_letters = set(plan.failed) | plan.failed_covered
        stray = [
            self.reasons[id(r)]
            for r in self.letters
            if r.value not in plan.malformed and _letter_asset(r) not in expected_letters
        ]
        writes = _max_in_window(state.admitted["write"], QUOTAS.window)
        queries = _max_in_window(state.admitted["query"], QUOTAS.window)
        checks: list[tuple[bool, str]] = [
            (
                self.settled and self.log.finals == self.expected,
                f"every record has exactly one final outcome ({self.log.finals} lines for "
                f"{self.expected} records)",
            ),
            (
                not bare,
                f"every FAILED asset ends with a cover or a dead letter saying why "
                f"({len(bare)} without either{': ' + ', '.join(bare[:3]) if bare else ''})",
            ),
            (
                not touched,
                f"no asset that had a cover was written ({len(touched)} were)",
            ),
            (
                state.throttled <= MAX_THROTTLED
                and writes <= QUOTAS.writes_per_minute
                and queries <= QUOTAS.queries_per_minute,
                f"VOD quotas respected: {state.throttled} throttled (at most {MAX_THROTTLED}), "
                f"most writes in a window {writes} <= {QUOTAS.writes_per_minute}",
            ),
            (
                not missing,
                f"every malformed record is in the dead-letter topic with a reason "
                f"({len(plan.malformed) - len(missing)} of {len(plan.malformed)}; "
                f"{sum(values[v] > 1 for v in plan.malformed)} twice)",
            ),
            (
                not stray,
                f"nothing else was dead-lettered ({len(stray)} other"
                f"{': ' + '; '.join(stray[:3]) if stray else ''})",
            ),
            (not self.leaked, "the VOD secret key appears nowhere in the daemon's output"),
            (self.code == 0, f"the daemon exited {self.code} on SIGTERM (0 expected)"),
        ]
        print("\nchecks:")
        for ok, text in checks:
            print(f"  {'ok  ' if ok else 'FAIL'}  {text}")
        return sum(1 for ok, _ in checks if not ok)
