"""The VOD gateway: quota shares, one call at a time until the key is proven, the circuit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs

from consumer.devtools.simulator.app import run_simulator
from consumer.testing import ManualClock
from consumer.testing.vodsim import SimState
from consumer.vod.circuit import Circuit, CircuitOpen
from consumer.vod.client import VodClient
from consumer.vod.errors import VodSystemicError
from consumer.vod.gateway import GuardedVod
from consumer.vod.quota import QuotaWindow

PROJECT, AK, SK = "proj-1", "AK-GW", "the-right-secret"


async def test_a_share_allows_the_floor_of_its_part_of_the_quota_per_sliding_minute() -> None:
    clock = ManualClock(now=1000.0)
    window = QuotaWindow(100, clock=clock)
    window.set_share(1 / 3)

    for _ in range(33):
        await window.acquire()
    assert clock.slept == []
    await window.acquire()  # the 34th waits for the first to leave the window

    assert clock.slept == [pytest.approx(window.window + 1e-3)]
    assert 60 < window.window < 64  # a minute, and a margin for network jitter


async def test_a_growing_share_applies_after_a_full_window_and_a_shrinking_one_at_once() -> None:
    clock = ManualClock(now=1000.0)
    window = QuotaWindow(100, clock=clock)
    window.set_share(0.5)
    await window.acquire()

    window.set_share(1.0)
    assert window.limit == 50  # the old owner of the new partitions may still be spending
    clock.now += window.window
    assert window.limit == 100
    window.set_share(0.25)
    assert window.limit == 25


async def test_a_throttling_answer_quiets_the_window() -> None:
    clock = ManualClock(now=1000.0)
    window = QuotaWindow(100, clock=clock)
    window.set_share(1.0)
    window.quiet(3.0)

    await window.acquire()

    assert clock.slept == [3.0]


async def test_no_share_means_no_calls_until_partitions_arrive() -> None:
    clock = ManualClock(now=1000.0)
    window = QuotaWindow(100, clock=clock)

    waiting = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    window.set_share(1.0)
    await asyncio.wait_for(waiting, 1)

    assert set(clock.slept) == {1.0}


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimState, str]]:
    state = SimState(project_id=PROJECT, keys={AK: "not-what-the-daemon-has"})
    state.add_asset("a1", snapshots=[0, 12])
    server = await run_simulator("127.0.0.1", 0, state)
    yield state, server.url
    await server.stop()


def gateway(session: aiohttp.ClientSession, url: str, probe_interval: float) -> GuardedVod:
    client = VodClient(session, endpoint=url, project_id=PROJECT, access_key=AK, secret_key=SK)
    circuit = Circuit(
        lambda: client.show_asset_detail("0" * 32, ("base_info",)),
        probe_interval,
        structlog.get_logger(),
    )
    vod = GuardedVod(client, circuit, QuotaWindow(100), QuotaWindow(1500), max_concurrent=4)
    vod.set_share(1.0)
    return vod


async def test_a_wrong_key_fails_once_then_the_circuit_stops_every_call(
    sim: tuple[SimState, str],
) -> None:
    state, url = sim
    async with aiohttp.ClientSession() as session:
        vod = gateway(session, url, probe_interval=60)
        with capture_logs() as logs:
            results = await asyncio.gather(
                *(vod.show_asset_detail("a1") for _ in range(10)), return_exceptions=True
            )
        vod.circuit.stop()

    assert sum(isinstance(r, VodSystemicError) for r in results) == 1
    assert sum(isinstance(r, CircuitOpen) for r in results) == 9
    assert state.count("show_asset_detail") == 1  # one failed signature, far from 5
    assert [e["log_level"] for e in logs if e["event"] == "vod_circuit_open"] == ["critical"]


async def test_the_circuit_closes_when_a_probe_passes_after_the_key_is_fixed(
    sim: tuple[SimState, str],
) -> None:
    state, url = sim
    async with aiohttp.ClientSession() as session:
        vod = gateway(session, url, probe_interval=0.05)
        with pytest.raises(VodSystemicError):
            await vod.show_asset_detail("a1")
        assert vod.circuit.is_open
        state.keys[AK] = SK  # the operator fixes the key at VOD's side

        await asyncio.wait_for(vod.circuit.wait_closed(), 5)
        detail = await vod.show_asset_detail("a1")

    assert detail.asset_id == "a1"
    assert not vod.circuit.is_open
