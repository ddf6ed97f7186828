"""The daemon rows: ``cover-consumer run`` as a real process with its outcome lines in a
file, sampled for RSS and CPU until every produced record has its line, then checked."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from consumer.devtools.bench.common import MIB, Bench, BenchError, DaemonRun, Topic, say, timeout
from consumer.devtools.harness import FAST_GROUP, DaemonProcess, JsonLines, clean_env

__all__ = ["run_daemon"]

SAMPLE_INTERVAL = 0.2
# Matched in the raw bytes so counting 200,000 lines while the daemon runs costs next to
# nothing; the optional space keeps it working whichever JSON renderer logs.py uses.
OUTCOME_MARK = re.compile(rb'"event": ?"record_processed"')


def run_daemon(
    bench: Bench,
    scenario: str,
    topic: Topic,
    settings: dict[str, int],
    routes: list[dict[str, Any]] | None = None,
) -> DaemonRun:
    """Run ``cover-consumer run`` until every produced record has an outcome line, then
    SIGTERM it; sample its RSS meanwhile and check the lines against what was produced."""
    config = bench.work / f"{scenario}.yaml"
    out, err = bench.work / f"{scenario}.out", bench.work / f"{scenario}.err"
    config.write_text(json.dumps(_config(bench, topic.name, scenario, settings, routes)))
    say(f"daemon {scenario}: waiting for {len(topic.produced):,} outcome lines")
    env = clean_env(bench.work / "no-secrets")
    daemon = DaemonProcess(out, env, config, stderr=err)
    try:
        sampler = _watch(daemon, len(topic.produced), err)
        code = _terminate(daemon)
    finally:
        daemon.kill()  # the watch failed: nothing left to measure
    lines = _outcome_lines(out)
    bench.problems += [f"daemon {scenario}: {p}" for p in _verify(lines, topic, code)]
    run = DaemonRun(_rate(lines), sampler.peak, sampler.early or sampler.peak, sampler.cpu_share)
    say(
        f"daemon {scenario}: {run.rate:,.0f} events/s, {run.cpu_share:.0%} of a core, "
        f"peak RSS {run.peak_rss / MIB:.0f} MiB"
    )
    return run


def _config(
    bench: Bench,
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


def _watch(daemon: DaemonProcess, expected: int, err: Path) -> _Sampler:
    """Sample the daemon every SAMPLE_INTERVAL until ``expected`` outcome lines are out."""
    sampler = _Sampler(daemon.pid, expected)
    deadline = time.monotonic() + timeout(expected)
    lines = JsonLines(daemon.out)  # its own reader: counted, never parsed, while it runs
    done = 0
    while (done := done + lines.count(OUTCOME_MARK)) < expected:
        if daemon.process.poll() is not None:
            raise BenchError(
                f"daemon exited ({daemon.process.returncode}) after {done:,} of {expected:,} "
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


def _terminate(daemon: DaemonProcess) -> int:
    try:
        code, _ = daemon.terminate(timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError("daemon did not exit within 60 s of SIGTERM") from None
    return code


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


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
