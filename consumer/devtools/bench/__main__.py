"""Throughput and memory of the daemon, measured against one embedded broker.

``make bench`` runs ``python -m consumer.devtools.bench``; ``--records 20000 --backlog 20000``
is a quick run. Scenarios, each on its own freshly produced topic:

1. bare aiokafka + ``json.loads``: the ceiling a Python consumer on this machine can reach;
   beside it the same loop doing only the per-record work the product requires of any
   design (the pydantic event decode and one structlog outcome line): the floor of cost;
2. the daemon with the built-in ``log`` handler: its rate against that floor, the goal being
   at least half of it (all the daemon adds, engine, routes, retries, metrics and time
   limits, costs per record no more than the floor's work itself), and against the ceiling;
3. the daemon with a 100 ms handler and 256 records in flight: whether waiting handlers
   overlap as configured (ideal 256 / 0.1 s = 2,560 records/s);
4. the daemon draining a large backlog: whether its memory stays flat;
5. the ingest (``cover-consumer ingest``): signed SMN notifications/s to acknowledged
   records, and the p99 answer time at a fixed rate (goal: under 100 ms at 500/s).

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
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from consumer.devtools.bench.bare import bare_consume, outcome_logger, parse
from consumer.devtools.bench.common import MIB, Bench, BenchError, DaemonRun, say
from consumer.devtools.bench.daemon import run_daemon
from consumer.devtools.bench.ingest import GOAL_P99_MS, IngestRun, run_ingest
from consumer.devtools.bench.produce import asset_ids, produce
from consumer.devtools.broker import EmbeddedBroker

__all__ = ["main"]

ASSETS = 1_000
# Loose enough that neither bound holds the log-handler runs back: they measure CPU cost.
THROUGHPUT_SETTINGS = {
    "max_in_flight": 1024,
    "fetch_max_records": 500,
    "max_pending_per_partition": 5000,
}
SLEEP_HANDLER = "consumer.devtools.bench.handlers:sleep_100ms"
SLEEP_IN_FLIGHT = 256
SLEEP_IDEAL_RATE = SLEEP_IN_FLIGHT / 0.1
GOAL_FLOOR_RATIO = 0.50  # the daemon's rate over the floor's of the same run
GOAL_SLEEP_FRACTION = 0.80


@dataclass(frozen=True)
class Results:
    baseline: float
    floor: float  # bare loop + decode + outcome line: no engine can beat it
    daemon: DaemonRun
    sleep: DaemonRun
    backlog: DaemonRun
    backlog_records: int


@dataclass(frozen=True)
class Measured:
    daemon: Results | None
    ingest: IngestRun | None


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="cover-bench-") as tmp:
            work = Path(tmp)
            with EmbeddedBroker(log_file=work / "broker.log") as bootstrap:
                bench = Bench(bootstrap, work)
                measured = Measured(
                    _run_scenarios(bench, args) if args.only in ("all", "daemon") else None,
                    run_ingest(
                        bench, args.ingest_notifications, args.ingest_rate, args.ingest_seconds
                    )
                    if args.only in ("all", "ingest")
                    else None,
                )
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    print(_table(measured))
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
    parser.add_argument(
        "--only", choices=["all", "daemon", "ingest"], default="all", help="which rows to run"
    )
    parser.add_argument(
        "--ingest-notifications",
        type=_positive,
        default=5_000,
        help="signed notifications for the ingest's throughput",
    )
    parser.add_argument(
        "--ingest-rate", type=_positive, default=500, help="notifications/s for the p99"
    )
    parser.add_argument("--ingest-seconds", type=_positive, default=10, help="seconds at that rate")
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _run_scenarios(bench: Bench, args: argparse.Namespace) -> Results:
    rng = random.Random(20261121)  # the same records every run
    assets = asset_ids(rng, ASSETS)
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
    bench: Bench, rng: random.Random, assets: list[str], records: int, repeat: int
) -> tuple[float, float, DaemonRun]:
    """Median bare-consumer and floor rates, and the median daemon run, over one topic."""
    topic = produce(bench, "throughput", (rng.choice(assets) for _ in range(records)), rng)
    baselines: list[float] = []
    floors: list[float] = []
    daemons: list[DaemonRun] = []
    outcome_lines = outcome_logger(bench.work / "floor.out")
    # Interleaved rounds: whatever else loads the machine meanwhile hits every side alike.
    for i in range(repeat):
        baselines.append(asyncio.run(bare_consume(bench, topic, f"baseline-{i}", parse)))
        say(f"bare aiokafka + json.loads: {baselines[-1]:,.0f} events/s")
        floors.append(asyncio.run(bare_consume(bench, topic, f"floor-{i}", outcome_lines)))
        say(f"bare aiokafka + decode + outcome line: {floors[-1]:,.0f} events/s")
        daemons.append(run_daemon(bench, f"log-{i}", topic, THROUGHPUT_SETTINGS))
    median_run = sorted(daemons, key=lambda run: run.rate)[len(daemons) // 2]
    return statistics.median_high(baselines), statistics.median_high(floors), median_run


def _sleeping(bench: Bench, rng: random.Random, records: int) -> DaemonRun:
    # Every record its own asset, so per-asset ordering never holds a slot back.
    topic = produce(bench, "sleep", asset_ids(rng, records), rng)
    settings = {
        "max_in_flight": SLEEP_IN_FLIGHT,
        "fetch_max_records": 500,
        "max_pending_per_partition": records,  # never the bound here
    }
    routes = [{"match": {}, "handlers": [SLEEP_HANDLER]}]
    return run_daemon(bench, "sleep", topic, settings, routes)


def _backlog(bench: Bench, rng: random.Random, assets: list[str], records: int) -> DaemonRun:
    topic = produce(bench, "backlog", (rng.choice(assets) for _ in range(records)), rng)
    return run_daemon(bench, "backlog", topic, THROUGHPUT_SETTINGS)


# -- report ----------------------------------------------------------------------------------


def _table(measured: Measured) -> str:
    rows = [f"{'scenario':<36}{'events/s':>9}   vs bare  vs floor"]
    if measured.daemon is not None:
        rows += _daemon_rows(measured.daemon)
    if measured.ingest is not None:
        rows += _ingest_rows(measured.ingest)
    return "\n".join(rows)


def _ingest_rows(run: IngestRun) -> list[str]:
    return [
        f"{'ingest, signed SMN -> acked record':<36}{run.rate:>9,.0f}   notifications/s, "
        f"{run.cpu_share:.2f} of a core",
        f"{f'ingest p99 answer at {run.offered:,.0f}/s':<36}{run.p99_ms:>6.1f} ms"
        f"  (p50 {run.p50_ms:.1f}, max {run.max_ms:.0f}; {run.achieved:,.0f}/s answered;"
        f" goal < {GOAL_P99_MS:.0f} ms){_verdict(run.p99_ms < GOAL_P99_MS)}",
    ]


def _daemon_rows(results: Results) -> list[str]:
    daemon, sleep, backlog = results.daemon, results.sleep, results.backlog
    of_floor = daemon.rate / results.floor
    fraction = sleep.rate / SLEEP_IDEAL_RATE
    return [
        f"{'bare aiokafka + json.loads':<36}{results.baseline:>9,.0f}   1.00",
        f"{'bare + decode + outcome line':<36}{results.floor:>9,.0f}   "
        f"{results.floor / results.baseline:.2f}     1.00"
        "  (floor: the required per-record work alone)",
        f"{'daemon, log handler':<36}{daemon.rate:>9,.0f}   "
        f"{daemon.rate / results.baseline:.2f}     {of_floor:.2f}"
        f"  (goal >= {GOAL_FLOOR_RATIO:.2f} of floor){_verdict(of_floor >= GOAL_FLOOR_RATIO)}",
        f"{f'daemon, 100 ms handler, {SLEEP_IN_FLIGHT}':<36}{sleep.rate:>9,.0f}   {fraction:.2f}"
        f" of {SLEEP_IDEAL_RATE:,.0f}/s ideal (goal >= {GOAL_SLEEP_FRACTION:.2f})"
        f"{_verdict(fraction >= GOAL_SLEEP_FRACTION)}",
        f"{f'peak RSS draining {results.backlog_records:,}':<36}"
        f"{backlog.peak_rss / MIB:>5.0f} MiB (after 10%: {backlog.early_rss / MIB:.0f} MiB;"
        f" drained at {backlog.rate:,.0f} events/s)",
    ]


def _verdict(met: bool) -> str:
    return "" if met else "  BELOW GOAL"


if __name__ == "__main__":
    sys.exit(main())
