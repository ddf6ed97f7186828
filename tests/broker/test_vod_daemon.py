"""The daemon with VOD: a wrong key holds consumption instead of dead-lettering it, and
replicas share the tenant's quota without pushing VOD over it."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from consumer.devtools.broker import EmbeddedBroker, create_topic
from consumer.devtools.harness import DaemonProcess
from consumer.devtools.simulator.app import SimServer, run_simulator
from consumer.handlers.covers import fallback_cover
from consumer.testing.vodsim import Quotas, SimState
from consumer.vod.quota import widened
from tests.support import (
    cover_event,
    daemon_config,
    in_process,
    produce,
    read_topic,
    settings_for,
    start_daemon,
    until,
)

PROJECT, AK, SK = "proj-1", "AK-DAEMON", "the-daemons-secret"


def vod_settings(url: str, **more: Any) -> dict[str, Any]:
    return {
        "endpoint": url,
        "project_id": PROJECT,
        "access_key": AK,
        "secret_key": SK,
        "circuit_probe_interval": 0.3,
        **more,
    }


async def test_a_wrong_key_pauses_after_one_failure_and_fixing_it_resumes_every_event(
    bootstrap: str, name: str
) -> None:
    state = SimState(project_id=PROJECT, keys={AK: "a-different-secret"})
    for i in range(20):
        state.add_asset(f"a{i}", snapshots=[0, 4, 8])
    server = await run_simulator("127.0.0.1", 0, state)
    await create_topic(bootstrap, name, 2)
    await produce(bootstrap, name, [(None, cover_event(f"a{i}"), None) for i in range(20)])
    settings = settings_for(
        bootstrap,
        name,
        "fallback_cover",
        vod=vod_settings(server.url),
        covers={"verify_delay": 0.5},  # a set cover is checked once, through the tier
        retry={"tiers": [{"delay": 0.5}]},
    )
    try:
        with capture_logs() as logs:
            async with in_process(settings, {"fallback_cover": fallback_cover}) as parts:
                assert parts.vod is not None
                await until(lambda: parts.vod is not None and parts.vod.circuit.is_open)
                await until(lambda: parts.engine.paused == frozenset(parts.engine.committed()))
                circuit_gauge = REGISTRY.get_sample_value("cover_consumer_vod_circuit_open")
                refused = state.count("show_asset_detail")
                held = [e for e in logs if e["event"] == "record_processed"]
                state.keys[AK] = SK  # the operator fixes the key at VOD's side
                await until(lambda: len(done(logs)) == 20, timeout=60)
    finally:
        await server.stop()

    assert refused < 5  # one failed call, then probes: never the 5 that lock a key
    assert held == []  # nothing had an outcome while the circuit was open
    assert circuit_gauge == 1  # the alert's series
    assert REGISTRY.get_sample_value("cover_consumer_vod_circuit_open") == 0
    assert sorted(e["asset_id"] for e in done(logs)) == sorted(f"a{i}" for i in range(20))
    assert {e["cover"] for e in done(logs)} == {"verified"}
    assert await read_topic(bootstrap, f"{name}.dlq") == []
    assert all(asset.cover_url for asset in state.assets.values())
    assert [e["log_level"] for e in logs if e["event"] == "vod_circuit_open"] == ["critical"]


def done(logs: list[Any]) -> list[Any]:
    return [e for e in logs if e["event"] == "record_processed" and e["outcome"] == "done"]


@pytest.fixture(scope="module")
def quiet_broker() -> Iterator[str]:
    """A broker for the three-daemon rate measurements alone: by their turn the session's
    carries the whole suite's topics and groups, and drains measured on it came out at 0.86
    of the quota where a broker of their own gives 0.92 (``$KAFKA_BOOTSTRAP_SERVERS``, when
    set, is used instead)."""
    with EmbeddedBroker() as bootstrap:
        yield bootstrap


@pytest.fixture
def simulator_thread() -> Iterator[tuple[SimState, str]]:
    """The simulator in a thread of its own, for daemons in other processes."""
    state = SimState(
        project_id=PROJECT,
        keys={AK: SK},
        quotas=Quotas(writes_per_minute=20, queries_per_minute=1500, window=3.0),
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server: SimServer = asyncio.run_coroutine_threadsafe(
        run_simulator("127.0.0.1", 0, state), loop
    ).result(10)
    yield state, server.url
    asyncio.run_coroutine_threadsafe(_stop(server), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


async def _stop(server: SimServer) -> None:
    await server.stop()


@dataclass(frozen=True)
class Drain:
    """The writes VOD received while three daemons drained a backlog."""

    writes: int
    seconds: float  # from the first write VOD received to the last
    most_in_a_window: int
    throttled: int
    handled_by: list[int]  # events each daemon handled

    @property
    def of_quota(self) -> float:
        """The drain rate as a fraction of the tenant's write quota."""
        return self.writes / (WRITES / WINDOW) / self.seconds


WRITES, WINDOW = 20, 3.0  # the tenant's write quota in the simulator_thread fixture


#: Seconds after the previous burst (or after the daemons settled), events per partition.
Burst = tuple[float, dict[int, int]]


def drain_with_three_daemons(
    bootstrap: str,
    name: str,
    tmp_path: Path,
    simulator: tuple[SimState, str],
    bursts: Callable[[list[list[int]]], list[Burst]],
) -> Drain:
    """Three daemons on 6 partitions, settled (each owns 2 and its share had a window to
    grow), then FAILED events in ``bursts`` (given the partitions each daemon owns), all
    drained."""
    state, url = simulator
    asyncio.run(create_topic(bootstrap, name, 6))
    quotas = {"write_quota_per_minute": WRITES, "quota_window": WINDOW}
    extra = {"vod": vod_settings(url, **quotas)}
    config = daemon_config(tmp_path, bootstrap, name, name, "fallback_cover", extra=extra)
    daemons = [start_daemon(config, tmp_path / f"d{n}.log") for n in range(3)]
    daemons[0].wait_for(lambda: settled(daemons, name), 90, "each daemon owning 2 partitions")
    time.sleep(widened(WINDOW) + 2.0)  # the shares had a window to grow since
    plan = bursts([owned(daemon, name) for daemon in daemons])
    total = sum(sum(events.values()) for _, events in plan)
    for i in range(total):
        state.add_asset(f"a{i}", snapshots=[0, 4, 8])
    assets = iter(range(total))
    for delay, events in plan:
        time.sleep(delay)
        records = [
            (f"a{i}".encode(), cover_event(f"a{i}"), partition)
            for partition, count in events.items()
            for i in itertools.islice(assets, count)
        ]
        asyncio.run(produce(bootstrap, name, records))
    daemons[0].wait_for(
        lambda: sum(len(d.outcomes()) for d in daemons) >= total, 120, "every event handled"
    )
    for daemon in daemons:
        daemon.terminate()
    arrivals = sorted(state.received["write"])
    return Drain(
        writes=state.count("update_cover"),
        seconds=arrivals[-1] - arrivals[0],
        most_in_a_window=state.most_in_window("write"),
        throttled=state.throttled,
        handled_by=[len(d.outcomes()) for d in daemons],
    )


def owned(daemon: DaemonProcess, topic: str) -> list[int]:
    """The partitions of ``topic`` in the daemon's latest assignment."""
    latest = daemon.events("partitions_assigned")[-1]["partitions"]
    return sorted(int(p.rsplit("/", 1)[1]) for p in latest if p.startswith(f"{topic}/"))


def settled(daemons: list[DaemonProcess], topic: str) -> bool:
    """Whether each daemon's latest assignment holds 2 of the 6 partitions of ``topic``."""
    owned = []
    for daemon in daemons:
        assigned = daemon.events("partitions_assigned")
        if not assigned or len(daemon.events("partitions_revoked")) >= len(assigned):
            return False
        owned.append(sum(p.startswith(f"{topic}/") for p in assigned[-1]["partitions"]))
    return owned == [2, 2, 2]


def report(what: str, drain: Drain) -> None:
    print(
        f"{what}: {drain.writes} writes in {drain.seconds:.1f} s at VOD, "
        f"{drain.of_quota:.2f} of the quota ({WRITES} per {WINDOW:g} s); most in a window "
        f"{drain.most_in_a_window}, throttled {drain.throttled}, by daemon {drain.handled_by}"
    )


@pytest.mark.slow
def test_three_daemons_drain_one_busy_partition_near_the_whole_write_quota(
    quiet_broker: str, name: str, tmp_path: Path, simulator_thread: tuple[SimState, str]
) -> None:
    drain = drain_with_three_daemons(
        quiet_broker, name, tmp_path, simulator_thread, lambda _: [(0.0, {0: 60})]
    )
    report("all on 1 of 6 partitions", drain)

    assert drain.writes == 60
    assert drain.throttled == 0
    assert drain.most_in_a_window <= WRITES
    assert drain.of_quota >= 0.8


@pytest.mark.slow
def test_three_daemons_drain_an_even_spread_at_the_whole_write_quota(
    quiet_broker: str, name: str, tmp_path: Path, simulator_thread: tuple[SimState, str]
) -> None:
    drain = drain_with_three_daemons(
        quiet_broker,
        name,
        tmp_path,
        simulator_thread,
        lambda _: [(0.0, dict.fromkeys(range(6), 20))],
    )
    report("even over 6 partitions", drain)

    assert drain.writes == 120
    assert drain.throttled == 0
    # While all three drain, together they use the whole quota, never more.
    assert drain.most_in_a_window == WRITES
    assert all(handled == 40 for handled in drain.handled_by)  # each its 2 partitions
    # Over the whole drain, less: as one daemon finishes, the others' shares grow only
    # after a full window (the rule that keeps the group under the quota while shares
    # change), so the tail loses a window or so. Measured 0.75-0.92 on 2 cores; a share
    # stuck at a third would drain at 0.33.
    assert drain.of_quota >= 0.7


@pytest.mark.slow
def test_three_daemons_never_exceed_the_write_quota_while_the_hot_partition_moves(
    quiet_broker: str, name: str, tmp_path: Path, simulator_thread: tuple[SimState, str]
) -> None:
    def moving(owned: list[list[int]]) -> list[Burst]:
        # The first daemon's partition is busy, then, while it still drains, the second's.
        return [(0.0, {owned[0][0]: 30}), (4.0, {owned[1][0]: 30})]

    drain = drain_with_three_daemons(quiet_broker, name, tmp_path, simulator_thread, moving)
    report("hot partition moving to another daemon", drain)

    assert drain.writes == 60
    assert drain.throttled == 0
    assert drain.most_in_a_window <= WRITES
    assert drain.handled_by[:2] == [30, 30]


@pytest.mark.slow
def test_vod_slow_and_resetting_never_receives_more_than_the_quota_in_a_window(
    bootstrap: str, name: str, tmp_path: Path, simulator_thread: tuple[SimState, str]
) -> None:
    state, url = simulator_thread
    state.quotas = Quotas(writes_per_minute=10, queries_per_minute=20, window=3.0)
    total = 40
    for i in range(total):
        state.add_asset(f"a{i}", snapshots=[0, 4, 8])
    # VOD sick: slow answers and dropped connections, healing after a while.
    state.faults.latency = (0.4, 0.8)
    state.faults.reset_rate = 0.3
    asyncio.run(create_topic(bootstrap, name, 2))
    quotas = {"write_quota_per_minute": 10, "query_quota_per_minute": 20, "quota_window": 3.0}
    extra = {
        "vod": vod_settings(url, timeout=2.0, **quotas),
        "retry": {
            "quick_base_delay": 0.05,
            "quick_budget": 2,
            "tiers": [{"delay": 1}, {"delay": 3}],
        },
    }
    config = daemon_config(tmp_path, bootstrap, name, name, "fallback_cover", extra=extra)
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(daemon.joined, 60, "join")
    records = [(f"a{i}".encode(), cover_event(f"a{i}"), None) for i in range(total)]
    asyncio.run(produce(bootstrap, name, records))
    time.sleep(8)
    state.faults.latency, state.faults.reset_rate = (0.0, 0.0), 0.0  # VOD heals
    daemon.wait_for(
        lambda: sum(1 for o in daemon.outcomes() if o["outcome"] != "retried") >= total,
        120,
        "every event settled",
    )
    daemon.terminate()

    assert state.count("show_asset_detail", "reset") > 0  # the faults did bite
    assert state.most_in_window("query") <= 20
    assert state.most_in_window("write") <= 10
    assert state.throttled == 0
