"""Reliability against the real broker with real processes: kill, rebalance, shut down, backlog.

Each test counts records: every produced record must end with at least one
``record_processed`` line, and committed offsets never pass a record without one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from consumer.devtools.broker import EmbeddedBroker, create_topic
from consumer.devtools.harness import DaemonProcess
from tests.support import (
    committed,
    coordinates,
    cover_event,
    daemon_config,
    produce,
    start_daemon,
)

pytestmark = pytest.mark.slow


def keyed(count: int, assets: int) -> list[tuple[bytes | None, bytes, int | None]]:
    return [
        (f"a{i % assets}".encode(), cover_event(f"a{i % assets}", seq=i), None)
        for i in range(count)
    ]


def test_sigkill_mid_stream_then_restart_gives_every_record_an_outcome(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    total, partitions, max_in_flight = 5000, 4, 64
    asyncio.run(create_topic(bootstrap, name, partitions))
    asyncio.run(produce(bootstrap, name, keyed(total, 400)))
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:random_delay", max_in_flight=max_in_flight
    )
    first = start_daemon(config, tmp_path / "first.log", env={"TEST_MAX_DELAY_MS": "5"})
    first.wait_for(lambda: len(first.outcomes()) >= total // 3, 60, "a third of the records")
    first.kill()
    second = start_daemon(config, tmp_path / "second.log")
    seen = Counter(coordinates(first.outcomes()))
    second.wait_for(
        lambda: len(seen.keys() | set(coordinates(second.outcomes()))) == total, 90, "every record"
    )
    code, _ = second.terminate()

    seen.update(coordinates(second.outcomes()))
    duplicates = sum(seen.values()) - len(seen)
    assert code == 0
    assert len(seen) == total
    # Replayed at most: the uncommitted window of each partition, i.e. records finished
    # since the last commit plus those in flight when the process died.
    window = max_in_flight + _finished_per_commit_interval(first)
    assert duplicates <= partitions * window, (duplicates, window)


def _finished_per_commit_interval(daemon: DaemonProcess, interval: float = 0.2) -> int:
    stamps = sorted(line["timestamp"] for line in daemon.outcomes())
    if len(stamps) < 2:
        return 0
    span = (datetime.fromisoformat(stamps[-1]) - datetime.fromisoformat(stamps[0])).total_seconds()
    return int(len(stamps) / max(span, 1e-3) * interval) + 1


def test_member_joins_and_leaves_mid_stream_without_losing_records(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    total, partitions = 6000, 6
    asyncio.run(create_topic(bootstrap, name, partitions))
    asyncio.run(produce(bootstrap, name, keyed(total, 600)))
    # ~800 records/s: the stream lasts long enough for a member to join and leave mid-way.
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:random_delay", max_in_flight=16
    )
    env = {"TEST_MAX_DELAY_MS": "40"}
    first = start_daemon(config, tmp_path / "first.log", env=env)
    first.wait_for(lambda: len(first.outcomes()) >= 500, 60, "first member under way")
    second = start_daemon(config, tmp_path / "second.log", env=env)
    second.wait_for(lambda: len(second.outcomes()) >= 200, 60, "second member took partitions")
    code_second, _ = second.terminate()
    first.wait_for(
        lambda: len(set(coordinates(first.outcomes() + second.outcomes()))) == total,
        120,
        "every record after the second member left",
    )
    code_first, _ = first.terminate()

    seen = set(coordinates(first.outcomes() + second.outcomes()))
    assert (code_first, code_second) == (0, 0)
    assert len(seen) == total
    assert first.events("partitions_revoked"), "the first member went through a rebalance"
    final = asyncio.run(committed(bootstrap, name, name, partitions))
    assert sum(o or 0 for o in final.values()) == total


def test_sigterm_drains_in_flight_work_and_commits_within_the_timeout(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 2))
    asyncio.run(produce(bootstrap, name, keyed(3000, 300)))
    config = daemon_config(
        tmp_path,
        bootstrap,
        name,
        name,
        "tests.handlers:random_delay",
        max_in_flight=128,
        shutdown_timeout=8,
        commit_interval=60,
    )
    daemon = start_daemon(config, tmp_path / "d.log", env={"TEST_MAX_DELAY_MS": "300"})
    daemon.wait_for(lambda: len(daemon.outcomes()) >= 200, 60, "work under way")
    code, seconds = daemon.terminate()

    final = asyncio.run(committed(bootstrap, name, name, 2))
    done = set(coordinates(daemon.outcomes()))
    assert code == 0
    assert seconds < 8
    assert daemon.events("shutdown")[0]["drained"] is True
    assert daemon.events("record_released") == []
    # commit_interval is 60 s: only the shutdown commit can have stored these offsets.
    for partition, offset in final.items():
        assert offset
        assert all((partition, o) in done for o in range(offset))


def test_sigterm_with_a_stuck_handler_exits_in_time_and_commits_below_it(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    values = [cover_event(f"a{i}") for i in range(10)] + [cover_event("stall")]
    values += [cover_event(f"b{i}") for i in range(10)]
    asyncio.run(produce(bootstrap, name, [(None, v, 0) for v in values]))
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:stall_marked", shutdown_timeout=4
    )
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 20, 60, "all but the stalled record")
    code, seconds = daemon.terminate()

    assert code == 0
    assert seconds < 4 + 1  # the timeout, plus interpreter exit
    assert [line["offset"] for line in daemon.events("record_released")] == [10]
    assert asyncio.run(committed(bootstrap, name, name, 1))[0] == 10


def test_sigterm_while_the_broker_is_down_still_exits_within_the_timeout(
    name: str, tmp_path: Path
) -> None:
    with EmbeddedBroker() as own_bootstrap:
        asyncio.run(create_topic(own_bootstrap, name, 2))
        asyncio.run(produce(own_bootstrap, name, keyed(200, 20)))
        config = daemon_config(
            tmp_path, own_bootstrap, name, name, "tests.handlers:random_delay", shutdown_timeout=5
        )
        daemon = start_daemon(config, tmp_path / "d.log")
        daemon.wait_for(lambda: len(daemon.outcomes()) == 200, 60, "all records")
    # The broker is gone now.
    time.sleep(0.5)
    code, seconds = daemon.terminate()
    assert code == 0
    assert seconds < 5 + 1


def test_backlog_of_100k_records_keeps_memory_flat(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 4))
    asyncio.run(produce(bootstrap, name, keyed(100_000, 5000)))
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:random_delay", max_in_flight=256
    )
    # ~2,500 records/s: the backlog stays mostly unread while memory is sampled.
    daemon = start_daemon(config, tmp_path / "d.log", env={"TEST_MAX_DELAY_MS": "200"})
    process = psutil.Process(daemon.process.pid)
    daemon.wait_for(daemon.joined, 60, "join")
    samples = []
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        samples.append(process.memory_info().rss / 2**20)
        time.sleep(0.2)
    processed = len(daemon.outcomes())
    code, _ = daemon.terminate()

    first, second = max(samples[: len(samples) // 2]), max(samples[len(samples) // 2 :])
    print(f"RSS peak {first:.0f} MiB then {second:.0f} MiB; {processed} of 100,000 done")
    assert code == 0
    assert 10_000 < processed < 90_000, "the sample should be taken mid-backlog"
    # Everything held is bounded by config (in-flight records, fetch buffers), not by the
    # backlog: the second half of the drain needs no more memory than the first.
    assert second < first * 1.15
    assert max(samples) < 256
