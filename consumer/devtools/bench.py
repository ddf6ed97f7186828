"""Throughput and memory of the daemon, measured against one embedded broker.

``make bench`` runs ``python -m consumer.devtools.bench``; ``--records 20000 --backlog 20000``
is a quick run. Scenarios, each on its own freshly produced topic:

1. bare aiokafka + ``json.loads``: the ceiling a Python consumer on this machine can reach;
   beside it the same loop doing only the per-record work the product requires of any
   design (the pydantic event decode and one structlog outcome line): the floor of cost;
2. the daemon with the built-in ``log`` handler: its cost per record over that ceiling;
3. the daemon with a 100 ms handler and 256 records in flight: whether waiting handlers
   overlap as configured (ideal 256 / 0.1 s = 2,560 records/s);
4. the daemon draining a large backlog: whether its memory stays flat.

The daemon always runs as a real ``cover-consumer run`` process with its outcome lines in a
file, so the numbers include JSON logging. Its rates are taken from the first to the last
``record_processed`` timestamp, leaving out start-up and the group join (Tansu delays a
first join by half the session timeout); the baseline's clock likewise starts with its first
batch. Exit status 1 when a run could not be measured or its outcome lines do not match
what was produced (missing, duplicated, not ``done``): then the numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from consumer import logs
from consumer.config import CONFIG_ENV, SECRETS_DIR_ENV, LogSettings
from consumer.devtools.broker import EmbeddedBroker, create_topic
from consumer.events import decode

__all__ = ["main"]

PARTITIONS = 8
ASSETS = 1_000
# Kafka's minimum session: Tansu delays a group's first join by half of it.
FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
# Loose enough that neither bound holds the log-handler runs back: they measure CPU cost.
THROUGHPUT_SETTINGS = {
    "max_in_flight": 1024,
    "fetch_max_records": 500,
    "max_pending_per_partition": 5000,
}
SLEEP_HANDLER = "consumer.devtools.bench_handlers:sleep_100ms"
SLEEP_IN_FLIGHT = 256
SLEEP_IDEAL_RATE = SLEEP_IN_FLIGHT / 0.1
GOAL_DAEMON_RATIO = 0.40
GOAL_SLEEP_FRACTION = 0.80
SAMPLE_INTERVAL = 0.2
# Matched in the raw bytes so counting 200,000 lines while the daemon runs costs next to
# nothing; the optional space keeps it working whichever JSON renderer logs.py uses.
OUTCOME_MARK = re.compile(rb'"event": ?"record_processed"')
MIB = 1024 * 1024


class BenchError(Exception):
    """A scenario could not be measured (daemon died, timed out, broker refused)."""


@dataclass(frozen=True)
class DaemonRun:
    rate: float
    peak_rss: int
    early_rss: int  # at the first sample after 10% of the records had an outcome
    cpu_share: float  # of one core while outcomes flowed: near 1.0 means CPU-bound


@dataclass(frozen=True)
class Results:
    baseline: float
    floor: float  # bare loop + decode + outcome line: no engine can beat it
    daemon: DaemonRun
    sleep: DaemonRun
    backlog: DaemonRun
    backlog_records: int


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="cover-bench-") as tmp:
            work = Path(tmp)
            with EmbeddedBroker(log_file=work / "broker.log") as bootstrap:
                bench = _Bench(bootstrap, work)
                results = _run_scenarios(bench, args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(_table(results))
    for problem in bench.problems:
        print(f"VERIFY FAILED {problem}")
    return 1 if bench.problems else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.devtools.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=_positive, default=100_000, help="throughput records")
    parser.add_argument("--backlog", type=_positive, default=200_000, help="backlog records (RSS)")
    parser.add_argument(
        "--sleep-records", type=_positive, default=20_000, help="records for the 100 ms handler"
    )
    parser.add_argument(
        "--repeat", type=_positive, default=3, help="baseline/daemon pairs; medians are compared"
    )
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


class _Bench:
    """One broker and one scratch directory; topic and group names unique per run, so an
    external broker ($KAFKA_BOOTSTRAP_SERVERS) never hands back an earlier run's records."""

    def __init__(self, bootstrap: str, work: Path) -> None:
        self.bootstrap = bootstrap
        self.work = work
        self.problems: list[str] = []  # failed checks: the numbers beside them mean nothing
        self._run = uuid.uuid4().hex[:8]

    def name(self, scenario: str) -> str:
        return f"bench-{scenario}-{self._run}"


def _run_scenarios(bench: _Bench, args: argparse.Namespace) -> Results:
    rng = random.Random(20261121)  # the same records every run
    assets = _asset_ids(rng, ASSETS)
    baseline, floor, daemon = _throughput(bench, rng, assets, args.records, args.repeat)
    return Results(
        baseline,
        floor,
        daemon,
        _sleeping(bench, rng, args.sleep_records),
        _backlog(bench, rng, assets, args.backlog),
        args.backlog,
    )


def _throughput(
    bench: _Bench, rng: random.Random, assets: list[str], records: int, repeat: int
) -> tuple[float, float, DaemonRun]:
    """Median bare-consumer and floor rates, and the median daemon run, over one topic."""
    topic = _produce(bench, "throughput", (rng.choice(assets) for _ in range(records)), rng)
    baselines: list[float] = []
    floors: list[float] = []
    daemons: list[DaemonRun] = []
    outcome_lines = _outcome_logger(bench.work / "floor.out")
    # Interleaved rounds: whatever else loads the machine meanwhile hits every side alike.
    for i in range(repeat):
        baselines.append(asyncio.run(_bare_consume(bench, topic, f"baseline-{i}", _parse)))
        _say(f"bare aiokafka + json.loads: {baselines[-1]:,.0f} events/s")
        floors.append(asyncio.run(_bare_consume(bench, topic, f"floor-{i}", outcome_lines)))
        _say(f"bare aiokafka + decode + outcome line: {floors[-1]:,.0f} events/s")
        daemons.append(_run_daemon(bench, f"log-{i}", topic, THROUGHPUT_SETTINGS))
    median_run = sorted(daemons, key=lambda run: run.rate)[len(daemons) // 2]
    return statistics.median_high(baselines), statistics.median_high(floors), median_run


def _sleeping(bench: _Bench, rng: random.Random, records: int) -> DaemonRun:
    # Every record its own asset, so per-asset ordering never holds a slot back.
    topic = _produce(bench, "sleep", _asset_ids(rng, records), rng)
    settings = {
        "max_in_flight": SLEEP_IN_FLIGHT,
        "fetch_max_records": 500,
        "max_pending_per_partition": records,  # never the bound here
    }
    routes = [{"match": {}, "handlers": [SLEEP_HANDLER]}]
    return _run_daemon(bench, "sleep", topic, settings, routes)


def _backlog(bench: _Bench, rng: random.Random, assets: list[str], records: int) -> DaemonRun:
    topic = _produce(bench, "backlog", (rng.choice(assets) for _ in range(records)), rng)
    return _run_daemon(bench, "backlog", topic, THROUGHPUT_SETTINGS)


# -- producing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    name: str
    # (partition, offset) of every acknowledged record: the daemon must report exactly these.
    produced: frozenset[tuple[int, int]]


def _asset_ids(rng: random.Random, count: int) -> list[str]:
    return [f"{rng.getrandbits(128):032x}" for _ in range(count)]


def _produce(bench: _Bench, scenario: str, assets: Iterable[str], rng: random.Random) -> Topic:
    name = bench.name(scenario)
    began = time.perf_counter()
    produced = asyncio.run(_produce_async(bench.bootstrap, name, assets, rng))
    seconds = time.perf_counter() - began
    _say(f"produced {len(produced):,} records to {name} in {seconds:.1f} s")
    return Topic(name, frozenset(produced))


async def _produce_async(
    bootstrap: str, topic: str, assets: Iterable[str], rng: random.Random
) -> list[tuple[int, int]]:
    await create_topic(bootstrap, topic, PARTITIONS)
    # send() only queues; awaiting the acks in chunks keeps batches full without holding
    # a future per record for the whole topic.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    produced: list[tuple[int, int]] = []
    try:
        pending: list[asyncio.Future[Any]] = []
        for seq, asset_id in enumerate(assets):
            value = _cover_complete(rng, asset_id, seq)
            pending.append(await producer.send(topic, value, key=asset_id.encode()))
            if len(pending) >= 10_000:
                produced.extend(await _acked(pending))
        produced.extend(await _acked(pending))
    finally:
        await producer.stop()
    return produced


async def _acked(pending: list[asyncio.Future[Any]]) -> list[tuple[int, int]]:
    metadata = await asyncio.gather(*pending)
    pending.clear()
    return [(int(m.partition), int(m.offset)) for m in metadata]


def _cover_complete(rng: random.Random, asset_id: str, seq: int) -> bytes:
    """A coverComplete body as VOD sends it (shared/vod/VOD_API.md, section 1)."""
    info: dict[str, Any] = {
        "title": f"upload-{seq:07d}.mp4",
        "asset_id": asset_id,
        "cover_type": "HEAD_FRAME_COVER",
    }
    if rng.random() < 0.9:
        cdn = rng.randint(1, 999)
        url = f"https://{cdn}.cdn-vod.huaweicloud.com/asset/{asset_id}/cover/Cover0.jpg"
        info.update(status="SUCCEED", cover_urls=[{"offset": 0, "url": url}])
    else:
        # The documented failure carries the literal string "null" as its message.
        info.update(status="FAILED", error_code="VOD.10013", error_msg="null")
    return json.dumps({"event_type": "coverComplete", "cover_info": info}).encode()


# -- the baseline ----------------------------------------------------------------------------


def _parse(record: ConsumerRecord[bytes, bytes]) -> None:
    json.loads(record.value)


def _outcome_logger(path: Path) -> Callable[[ConsumerRecord[bytes, bytes]], None]:
    """Per record what the product asks of any design: decode the event with its pydantic
    model and write one structlog ``record_processed`` line with the fields the daemon's
    line carries. Nothing of the engine: no scheduling, offsets, routes or metrics."""
    logs.configure(LogSettings(format="json"), stream=path.open("w"))
    log = logs.get_logger()

    def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        began = time.perf_counter()
        event = decode(record.value)
        log.info(
            "record_processed",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            asset_id=event.asset_id,
            event_type=event.event_type,
            outcome="done",
            handler="log",
            attempt=1,
            duration_ms=round((time.perf_counter() - began) * 1000, 3),
            reason=None,
            status=event.status,
            cover_type=event.cover_type,
        )

    return handle


async def _bare_consume(
    bench: _Bench,
    topic: Topic,
    scenario: str,
    handle: Callable[[ConsumerRecord[bytes, bytes]], None],
) -> float:
    """Fetch every record and ``handle`` it, nothing else; events/s from the first batch on."""
    expected = len(topic.produced)
    consumer = AIOKafkaConsumer(
        topic.name,
        bootstrap_servers=bench.bootstrap,
        group_id=bench.name(scenario),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **FAST_GROUP,
    )
    await consumer.start()
    try:
        seen, began = 0, 0.0
        deadline = time.monotonic() + _timeout(expected)
        while seen < expected:
            if time.monotonic() > deadline:
                raise BenchError(f"baseline saw {seen:,} of {expected:,} records in time")
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if batch and not began:
                began = time.perf_counter()  # joined: the clock starts with the data
            for records in batch.values():
                for record in records:
                    handle(record)
                seen += len(records)
        return seen / (time.perf_counter() - began)
    finally:
        await consumer.stop()


# -- the daemon ------------------------------------------------------------------------------


def _run_daemon(
    bench: _Bench,
    scenario: str,
    topic: Topic,
    settings: dict[str, int],
    routes: list[dict[str, Any]] | None = None,
) -> DaemonRun:
    """Run ``cover-consumer run`` until every produced record has an outcome line, then
    SIGTERM it; sample its RSS meanwhile and check the lines against what was produced."""
    config = bench.work / f"{scenario}.yaml"
    out, err = bench.work / f"{scenario}.out", bench.work / f"{scenario}.err"
    config.write_text(json.dumps(_daemon_config(bench, topic.name, scenario, settings, routes)))
    _say(f"daemon {scenario}: waiting for {len(topic.produced):,} outcome lines")
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run", "--config", str(config)],
            stdout=stdout,
            stderr=stderr,
            env=_daemon_env(bench),
        )
    try:
        sampler = _watch(process, out, len(topic.produced), err)
        code = _terminate(process)
    finally:
        if process.poll() is None:  # the watch failed: nothing left to measure
            process.kill()
            process.wait()
    lines = _outcome_lines(out)
    bench.problems += [f"daemon {scenario}: {p}" for p in _verify(lines, topic, code)]
    run = DaemonRun(_rate(lines), sampler.peak, sampler.early or sampler.peak, sampler.cpu_share)
    _say(
        f"daemon {scenario}: {run.rate:,.0f} events/s, {run.cpu_share:.0%} of a core, "
        f"peak RSS {run.peak_rss / MIB:.0f} MiB"
    )
    return run


def _daemon_config(
    bench: _Bench,
    topic: str,
    scenario: str,
    settings: dict[str, int],
    routes: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bench.bootstrap,
            "topic": topic,
            "group_id": bench.name(scenario),
            **FAST_GROUP,
        },
        "consumer": settings,
        "log": {"format": "json", "level": "INFO"},
    }
    if routes is not None:  # None: the built-in routes, which send coverComplete to `log`
        config["routes"] = routes
    return config  # written as JSON, which every YAML parser reads


def _daemon_env(bench: _Bench) -> dict[str, str]:
    # A developer's own COVER_CONSUMER_* overrides or secret files must not change the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVER_CONSUMER")}
    env[SECRETS_DIR_ENV] = str(bench.work / "no-secrets")
    env.pop(CONFIG_ENV, None)
    return env


def _watch(process: subprocess.Popen[bytes], out: Path, expected: int, err: Path) -> _Sampler:
    """Sample the daemon every SAMPLE_INTERVAL until ``expected`` outcome lines are out."""
    sampler = _Sampler(process.pid, expected)
    deadline = time.monotonic() + _timeout(expected)
    with _OutcomeCounter(out) as counter:
        while (done := counter.poll()) < expected:
            if process.poll() is not None:
                raise BenchError(
                    f"daemon exited ({process.returncode}) after {done:,} of {expected:,} "
                    f"outcomes; its stderr ends:\n{_tail(err)}"
                )
            if time.monotonic() > deadline:
                raise BenchError(f"daemon reported {done:,} of {expected:,} outcomes in time")
            sampler.sample(done)
            time.sleep(SAMPLE_INTERVAL)
        sampler.sample(done)  # the CPU clock stops with the last outcome, not at SIGTERM
    return sampler


class _Sampler:
    """Peak RSS, RSS once 10% are done, and the CPU share of one core while outcomes flow."""

    def __init__(self, pid: int, expected: int) -> None:
        self._process = psutil.Process(pid)
        self._expected = expected
        self._flowing: tuple[float, float] | None = None  # (wall, cpu) at the first outcome
        self.peak = self.early = 0
        self.cpu_share = 0.0

    def sample(self, done: int) -> None:
        try:
            with self._process.oneshot():
                rss = int(self._process.memory_info().rss)
                times = self._process.cpu_times()
        except psutil.Error:
            return  # exited since the last check: the watch loop reports it
        self.peak = max(self.peak, rss)
        if not self.early and done >= self._expected / 10:
            self.early = rss
        now, cpu = time.monotonic(), float(times.user + times.system)
        if self._flowing is None:
            if done:  # the group join before this point is idle waiting, not work
                self._flowing = (now, cpu)
        elif now > self._flowing[0]:
            self.cpu_share = (cpu - self._flowing[1]) / (now - self._flowing[0])


class _OutcomeCounter:
    """Counts outcome lines as the daemon appends them, reading each byte once."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self._partial = b""
        self._count = 0

    def poll(self) -> int:
        complete, _, self._partial = (self._partial + self._file.read()).rpartition(b"\n")
        self._count += len(OUTCOME_MARK.findall(complete))
        return self._count

    def __enter__(self) -> _OutcomeCounter:
        return self

    def __exit__(self, *_: object) -> None:
        self._file.close()


def _terminate(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError("daemon did not exit within 60 s of SIGTERM") from None


def _outcome_lines(out: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    with out.open("rb") as file:
        for raw in file:
            if OUTCOME_MARK.search(raw):
                lines.append(orjson.loads(raw))
    return lines


def _rate(lines: list[dict[str, Any]]) -> float:
    """Outcomes per second between the first and the last outcome line."""
    if len(lines) < 2:
        return 0.0
    stamps = [datetime.fromisoformat(line["timestamp"]) for line in lines]
    seconds = (max(stamps) - min(stamps)).total_seconds()
    return (len(lines) - 1) / seconds if seconds > 0 else 0.0


def _verify(lines: list[dict[str, Any]], topic: Topic, code: int) -> list[str]:
    """Exactly one `done` outcome for each produced record, and a clean exit."""
    produced = topic.produced
    problems: list[str] = []
    seen = Counter((line["partition"], line["offset"]) for line in lines)
    if len(lines) != len(produced):
        problems.append(f"{len(lines):,} outcome lines for {len(produced):,} records")
    if duplicates := sum(n - 1 for n in seen.values() if n > 1):
        problems.append(f"{duplicates:,} duplicate (partition, offset) outcomes")
    if missing := len(produced - seen.keys()):
        problems.append(f"{missing:,} produced records without an outcome")
    if foreign := sum(1 for line in lines if line["topic"] != topic.name):
        problems.append(f"{foreign:,} outcomes for another topic")
    if other := Counter(line["outcome"] for line in lines if line["outcome"] != "done"):
        problems.append(f"outcomes other than done: {dict(other)}")
    if code != 0:
        problems.append(f"daemon exited with {code} after SIGTERM")
    return problems


# -- report ----------------------------------------------------------------------------------


def _table(results: Results) -> str:
    daemon, sleep, backlog = results.daemon, results.sleep, results.backlog
    ratio = daemon.rate / results.baseline
    fraction = sleep.rate / SLEEP_IDEAL_RATE
    rows = [
        f"{'scenario':<36}{'events/s':>9}   vs",
        f"{'bare aiokafka + json.loads':<36}{results.baseline:>9,.0f}   1.00",
        f"{'bare + decode + outcome line':<36}{results.floor:>9,.0f}   "
        f"{results.floor / results.baseline:.2f}  (floor: the required per-record work alone)",
        f"{'daemon, log handler':<36}{daemon.rate:>9,.0f}   {ratio:.2f}"
        f"  (goal >= {GOAL_DAEMON_RATIO:.2f}){_verdict(ratio >= GOAL_DAEMON_RATIO)}",
        f"{f'daemon, 100 ms handler, {SLEEP_IN_FLIGHT}':<36}{sleep.rate:>9,.0f}   {fraction:.2f}"
        f" of {SLEEP_IDEAL_RATE:,.0f}/s ideal (goal >= {GOAL_SLEEP_FRACTION:.2f})"
        f"{_verdict(fraction >= GOAL_SLEEP_FRACTION)}",
        f"{f'peak RSS draining {results.backlog_records:,}':<36}"
        f"{backlog.peak_rss / MIB:>5.0f} MiB (after 10%: {backlog.early_rss / MIB:.0f} MiB;"
        f" drained at {backlog.rate:,.0f} events/s)",
    ]
    return "\n".join(rows)


def _verdict(met: bool) -> str:
    return "" if met else "  BELOW GOAL"


def _timeout(records: int) -> float:
    # Generous: a run this slow has failed as a benchmark anyway.
    return 60 + records / 1000


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
