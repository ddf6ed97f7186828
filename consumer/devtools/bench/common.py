"""What every bench module shares: the run's broker and scratch space, its errors."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIB", "Bench", "BenchError", "DaemonRun", "Topic", "say", "timeout"]

MIB = 1024 * 1024


class BenchError(Exception):
    """A scenario could not be measured (daemon died, timed out, broker refused)."""


@dataclass(frozen=True)
class Topic:
    name: str
    # (partition, offset) of every acknowledged record: the daemon must report exactly these.
    produced: frozenset[tuple[int, int]]


@dataclass(frozen=True)
class DaemonRun:
    rate: float
    peak_rss: int
    early_rss: int  # at the first sample after 10% of the records had an outcome
    cpu_share: float  # of one core while outcomes flowed: near 1.0 means CPU-bound


class Bench:
    """One broker and one scratch directory; topic and group names unique per run, so an
    external broker ($KAFKA_BOOTSTRAP_SERVERS) never hands back an earlier run's records."""

    def __init__(self, bootstrap: str, work: Path) -> None:
        self.bootstrap = bootstrap
        self.work = work
        self.problems: list[str] = []  # failed checks: the numbers beside them mean nothing
        self._run = uuid.uuid4().hex[:8]

    def name(self, scenario: str) -> str:
        return f"bench-{scenario}-{self._run}"


def timeout(records: int) -> float:
    # Generous: a run this slow has failed as a benchmark anyway.
    return 60 + records / 1000


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
