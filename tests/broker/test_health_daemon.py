"""The side server of a running daemon: /livez, /readyz and /metrics as it works."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import consumer
from consumer.devtools.broker import create_topic, free_port
from tests.support import (
    cover_event,
    daemon_config,
    produce,
    start_daemon,
)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return 0.0


@pytest.mark.slow
def test_probes_and_metrics_against_a_running_daemon(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(produce(bootstrap, name, [(None, cover_event(f"a{i}"), 0) for i in range(50)]))
    port = free_port()
    extra = {"http": {"port": port}}
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:stall_marked", extra=extra
    )
    daemon = start_daemon(config, tmp_path / "d.log", env={"TEST_STALL_S": "30"})
    daemon.wait_for(daemon.joined, 60, "join")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 50, 60, "the first records")

    assert get(port, "/livez") == (200, "ok\n")
    assert get(port, "/readyz") == (200, "ok\n")
    _, text = get(port, "/metrics")
    assert (
        metric(
            text,
            "cover_consumer_records_processed_total",
            outcome="done",
            handler="tests.handlers:stall_marked",
            topic=name,
        )
        == 50
    )
    assert metric(text, "cover_consumer_records_consumed_total", topic=name) == 50
    assert metric(text, "cover_consumer_build_info", version=consumer.__version__) == 1
    assert metric(text, "cover_consumer_vod_circuit_open") == 0
    assert metric(text, "cover_consumer_dead_letter_guard_tripped") == 0
    assert time.time() - metric(text, "cover_consumer_last_commit_timestamp_seconds") < 30
    deadline = time.monotonic() + 15
    while (
        metric(get(port, "/metrics")[1], "cover_consumer_lag_records", topic=name, partition="0")
        != 0
    ):
        assert time.monotonic() < deadline, "lag never reported as drained"
        time.sleep(0.5)

    asyncio.run(produce(bootstrap, name, [(None, cover_event("stall"), 0)]))
    deadline = time.monotonic() + 10
    while metric(get(port, "/metrics")[1], "cover_consumer_in_flight_records") != 1:
        assert time.monotonic() < deadline, "the stalled record never counted in flight"
        time.sleep(0.1)
    daemon.process.send_signal(signal.SIGTERM)
    daemon.wait_for(lambda: bool(daemon.events("shutdown_requested")), 10, "the signal")
    assert get(port, "/readyz") == (503, "shutting down\n")  # while it drains
    assert get(port, "/livez")[0] == 200
    assert daemon.process.wait(timeout=30) == 0
