"""The VOD gateway: one call at a time until the key is proven, the circuit, quota tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

import aiohttp
import pytest
import structlog
from structlog.testing import capture_logs

from consumer.devtools.simulator.app import run_simulator
from consumer.hold import Hold, Reason
from consumer.testing import ManualClock
from consumer.testing.vodsim import SimState
from consumer.vod.circuit import Circuit, CircuitOpen
from consumer.vod.client import VodClient
from consumer.vod.errors import (
    VodError,
    VodPermanentError,
    VodSystemicError,
    VodThrottled,
    VodTransientError,
)
from consumer.vod.gateway import GuardedVod
from consumer.vod.models import AssetDetail
from consumer.vod.quota import QuotaWindow
from tests.fakes import WHOLE_QUOTA
from tests.support import until

PROJECT, AK, SK = "proj-1", "AK-GW", "the-right-secret"


BOUND = 2.0  # seconds: only reached when a quota window or the circuit is broken


BAD_KEY = VodSystemicError("VOD.10002", "authentication failed", 401)


class Probe:
    """A circuit's probe call: raises each of ``answers`` in turn, then succeeds."""

    def __init__(self, answers: Iterable[Exception] = ()) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.answers:
            raise self.answers.pop(0)


def circuit(probe: Probe, hold: Hold | None = None) -> tuple[Circuit, ManualClock]:
    clock = ManualClock(now=1000.0)
    return Circuit(probe, 30.0, structlog.get_logger(), hold=hold, clock=clock), clock


async def test_a_new_circuit_is_closed_with_no_reason() -> None:
    c, _ = circuit(Probe())

    assert (c.is_open, c.reason) == (False, None)
    c.stop()  # nothing to stop: harmless


async def test_opening_holds_the_daemon_and_logs_a_critical_line_with_the_cause() -> None:
    hold = Hold()
    c, _ = circuit(Probe(), hold=hold)

    with capture_logs() as logs:
        c.open(BAD_KEY)
    c.stop()

    assert c.is_open
    assert c.reason == str(BAD_KEY)
    assert hold.why() == f"VOD circuit open: {BAD_KEY}"
    assert logs == [
        {
            "event": "vod_circuit_open",
            "log_level": "critical",
            "error_code": "VOD.10002",
            "reason": str(BAD_KEY),
            "action": "VOD calls and consumption paused; check the VOD keys, account and clock",
        }
    ]


async def test_a_failing_probe_keeps_the_circuit_open_and_probes_again_an_interval_later() -> None:
    probe = Probe([BAD_KEY, BAD_KEY])
    c, clock = circuit(probe)

    with capture_logs() as logs:
        c.open(BAD_KEY)
        async with asyncio.timeout(BOUND):
            await c.wait_closed()

    assert probe.calls == 3
    assert clock.slept == [30.0, 30.0, 30.0]
    assert [(e["event"], e["log_level"], e.get("error_code")) for e in logs[1:]] == [
        ("vod_circuit_probe_failed", "warning", "VOD.10002"),
        ("vod_circuit_probe_failed", "warning", "VOD.10002"),
        ("vod_circuit_closed", "warning", None),
    ]
    assert logs[-1]["action"] == "resuming"
    assert (c.is_open, c.reason) == (False, None)


async def test_a_probe_answered_with_a_non_systemic_error_closes_the_circuit() -> None:
    hold = Hold()
    c, _ = circuit(Probe([VodPermanentError("VOD.10062", "asset does not exist", 400)]), hold)

    with capture_logs() as logs:
        c.open(BAD_KEY)
        async with asyncio.timeout(BOUND):
            await c.wait_closed()

    assert logs[1:] == [
        {"event": "vod_circuit_probe_passed", "log_level": "info", "error": "VodPermanentError"},
        {"event": "vod_circuit_closed", "log_level": "warning", "action": "resuming"},
    ]
    assert Reason.CIRCUIT not in hold
    assert c.reason is None


@pytest.mark.parametrize(
    "no_answer",
    [
        VodTransientError(None, "show_asset_detail timed out", None),
        VodTransientError(None, "show_asset_detail connection failed", None),
        VodTransientError(None, None, 502),  # a proxy's page: VOD never saw the key
    ],
)
async def test_a_probe_that_got_no_answer_from_vod_keeps_the_circuit_open(
    no_answer: VodTransientError,
) -> None:
    # Closing on it would let the held records call with a key nobody vouched for, up to
    # 4 at once: the 5 failed signatures in a row that lock the key.
    probe = Probe([no_answer, no_answer])
    c, _ = circuit(probe)

    with capture_logs() as logs:
        c.open(BAD_KEY)
        async with asyncio.timeout(BOUND):
            await c.wait_closed()

    assert probe.calls == 3
    failed = {"event": "vod_circuit_probe_failed", "log_level": "warning", "error_code": None}
    assert logs[1:] == [
        {**failed, "status": no_answer.status},
        {**failed, "status": no_answer.status},
        {"event": "vod_circuit_closed", "log_level": "warning", "action": "resuming"},
    ]


@pytest.mark.parametrize(
    "answer",
    [
        VodThrottled(None, None, 429, retry_after=3.0),  # throttled after authentication
        VodTransientError("VOD.10051", "internal error", 500),  # VOD itself answered
        VodPermanentError(None, None, 400),  # refused as a request, not as a caller
    ],
)
async def test_a_probe_answered_with_an_error_not_about_the_caller_closes_the_circuit(
    answer: VodError,
) -> None:
    probe = Probe([answer])
    c, _ = circuit(probe)

    with capture_logs() as logs:
        c.open(BAD_KEY)
        async with asyncio.timeout(BOUND):
            await c.wait_closed()

    assert probe.calls == 1
    assert logs[1] == {
        "event": "vod_circuit_probe_passed",
        "log_level": "info",
        "error": type(answer).__name__,
    }


async def test_stop_ends_the_probes_of_an_open_circuit() -> None:
    probe = Probe()
    c, _ = circuit(probe)
    c.open(BAD_KEY)

    c.stop()
    for _ in range(10):  # ManualClock sleeps return at once: a live prober would be done
        await asyncio.sleep(0)

    assert probe.calls == 0
    assert c.is_open


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
    vod.set_share(WHOLE_QUOTA)
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


async def test_the_circuit_stays_open_while_vod_cannot_be_reached_at_all() -> None:
    state = SimState(project_id=PROJECT, keys={AK: "not-what-the-daemon-has"})
    server = await run_simulator("127.0.0.1", 0, state)
    async with aiohttp.ClientSession() as session:
        vod = gateway(session, server.url, probe_interval=0.02)
        with pytest.raises(VodSystemicError):
            await vod.show_asset_detail("a1")
        await server.stop()  # every probe now meets a refused connection

        with capture_logs() as logs:
            await until(lambda: [e["event"] for e in logs].count("vod_circuit_probe_failed") >= 3)
        vod.circuit.stop()

    assert vod.circuit.is_open
    assert "vod_circuit_closed" not in [e["event"] for e in logs]


@pytest.mark.parametrize("spelling", ["APIG", "APIGW"])
async def test_a_gateway_403_no_table_lists_opens_the_circuit_instead_of_failing_each_event(
    sim: tuple[SimState, str], spelling: Literal["APIG", "APIGW"]
) -> None:
    state, url = sim
    state.keys[AK] = SK
    state.gateway_spelling = spelling
    state.gateway_refusal = (403, "APIG.0399", "a refusal no table lists")
    async with aiohttp.ClientSession() as session:
        vod = gateway(session, url, probe_interval=60)
        results = await asyncio.gather(
            *(vod.show_asset_detail("a1") for _ in range(5)), return_exceptions=True
        )
        vod.circuit.stop()

    assert vod.circuit.is_open
    assert [type(r) for r in results].count(VodSystemicError) == 1
    assert sum(isinstance(r, CircuitOpen) for r in results) == 4
    assert vod.circuit.reason is not None
    assert f"{spelling}.0399" in vod.circuit.reason


class SlowVod:
    """A VOD whose answers wait for the test: calls pile up in flight."""

    def __init__(self) -> None:
        self.sent = 0
        self.answer = asyncio.Event()

    async def show_asset_detail(
        self, asset_id: str, categories: Any = (), *, calls: Any = None
    ) -> AssetDetail:
        self.sent += 1
        await self.answer.wait()
        return AssetDetail(asset_id=asset_id)

    async def update_cover(self, thumbnail_url: str, *, calls: Any = None) -> None:
        self.sent += 1

    async def create_process_task(self, request: Any, *, calls: Any = None) -> Any:
        raise NotImplementedError

    async def list_thumbnail_tasks(self, asset_id: str, *, calls: Any = None) -> Any:
        raise NotImplementedError


def guarded(vod: SlowVod, queries: int, clock: ManualClock) -> GuardedVod:
    circuit = Circuit(lambda: asyncio.sleep(0), 60, structlog.get_logger())
    gateway = GuardedVod(
        vod,
        circuit,
        QuotaWindow(100, clock=clock, window=10),
        QuotaWindow(queries, clock=clock, window=10),
        max_concurrent=4,
        clock=clock,
    )
    gateway.set_share(WHOLE_QUOTA)
    return gateway


async def test_a_quota_token_is_taken_only_as_a_call_is_sent_never_while_it_waits() -> None:
    vod, clock = SlowVod(), ManualClock(now=1000.0)
    gateway = guarded(vod, 100, clock)

    calls = [asyncio.create_task(gateway.show_asset_detail(f"a{i}")) for i in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    # The key is unproven: one call on the wire, nine waiting for it, none holding a token.
    assert (vod.sent, gateway.queries.spent) == (1, 1)
    vod.answer.set()
    await asyncio.wait_for(asyncio.gather(*calls), 1)

    assert (vod.sent, gateway.queries.spent) == (10, 10)


class HeldClock(ManualClock):
    """Sleeps wait until the test lets time pass."""

    def __init__(self, now: float) -> None:
        super().__init__(now=now)
        self.passes = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        await self.passes.wait()
        await super().sleep(seconds)


async def test_a_call_waiting_for_quota_leaves_its_connection_slot_to_others() -> None:
    vod, clock = SlowVod(), HeldClock(now=1000.0)
    vod.answer.set()
    gateway = guarded(vod, 1, clock)
    await gateway.show_asset_detail("a0")  # proves the key; spends the one query

    waiting = asyncio.create_task(gateway.show_asset_detail("a1"))
    await asyncio.sleep(0)
    await asyncio.wait_for(gateway.update_cover("https://cdn/x.jpg"), 1)  # a write still goes

    assert vod.sent == 2
    assert not waiting.done()
    clock.passes.set()
    await asyncio.wait_for(waiting, 1)
    assert vod.sent == 3


def test_a_call_taken_the_moment_a_quiet_period_ends_is_counted() -> None:
    clock = ManualClock(now=1000.0)
    window = QuotaWindow(100, clock=clock)
    window.ask(100)
    window.quiet(3.0)

    assert window.take() == pytest.approx(3.0)
    clock.advance(3.0)

    assert window.take() == 0.0
    assert window.spent == 1
