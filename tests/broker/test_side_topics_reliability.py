"""Side topics under faults, with real processes: crash with records in tiers, broker outage
while dead-lettering, and replaying dead letters (twice)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumer.devtools.broker import EmbeddedBroker, create_topic, free_port
from tests.support import (
    Proxy,
    committed,
    cover_event,
    daemon_config,
    header_map,
    operator_report,
    produce,
    read_topic,
    start_daemon,
)

pytestmark = pytest.mark.slow


def test_records_waiting_in_a_tier_survive_a_sigkill(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 2))
    asyncio.run(produce(bootstrap, name, [(None, cover_event(f"a{i}"), None) for i in range(20)]))
    extra = {"retry": {"quick_budget": 0.5, "tiers": [{"delay": 3}]}}
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:retry_once", extra=extra
    )
    first = start_daemon(config, tmp_path / "first.log", env={"TEST_RETRY_AFTER": "2"})
    first.wait_for(lambda: len(first.outcomes()) == 20, 60, "every record sent to the tier")
    first.kill()
    assert {line["outcome"] for line in first.outcomes()} == {"retried"}

    second = start_daemon(config, tmp_path / "second.log")
    second.wait_for(
        lambda: len([o for o in second.outcomes() if o["outcome"] == "done"]) == 20,
        60,
        "every record back from the tier",
    )
    code, _ = second.terminate()

    done = [o for o in second.outcomes() if o["outcome"] == "done"]
    assert code == 0
    assert {o["asset_id"] for o in done} == {f"a{i}" for i in range(20)}
    assert {o["attempt"] for o in done} == {2}
    assert {o["topic"] for o in done} == {f"{name}.retry.3s"}


def test_a_dead_letter_written_during_a_broker_outage_waits_and_lands_once(
    name: str, tmp_path: Path
) -> None:
    # Clients reach the broker only through the proxy: it is what the broker advertises.
    broker = EmbeddedBroker(advertised_port=free_port())
    proxy = Proxy(broker.advertised_port, broker.port)
    with broker:
        proxy.up()
        bootstrap = f"127.0.0.1:{proxy.port}"
        asyncio.run(create_topic(bootstrap, name, 1))
        asyncio.run(create_topic(bootstrap, f"{name}.dlq", 1))
        asyncio.run(produce(bootstrap, name, [(None, cover_event("gone"), 0)]))
        gate = tmp_path / "gate"
        config = daemon_config(tmp_path, bootstrap, name, name, "tests.handlers:gated_failure")
        daemon = start_daemon(config, tmp_path / "d.log", env={"TEST_GATE_FILE": str(gate)})
        daemon.wait_for(lambda: bool(daemon.events("gate_waiting")), 60, "the handler to start")

        proxy.down()
        gate.touch()
        daemon.wait_for(lambda: bool(daemon.events("side_write_failed")), 60, "a failed write")
        assert daemon.outcomes() == []  # not acknowledged: no outcome, so no commit past it
        proxy.up()
        daemon.wait_for(lambda: bool(daemon.outcomes()), 60, "the dead letter after recovery")
        code, _ = daemon.terminate()

        letters = asyncio.run(read_topic(bootstrap, f"{name}.dlq"))
        final = asyncio.run(committed(bootstrap, name, name, 1))
    proxy.down()
    assert code == 0
    assert [o["outcome"] for o in daemon.outcomes()] == ["dead_lettered"]
    assert len(letters) == 1
    assert final[0] == 1


def proxy_target(proxy: Proxy, direct: str) -> None:
    proxy._target = int(direct.rsplit(":", 1)[1])  # known only once started


def test_replay_republishes_dead_letters_once_however_often_it_runs(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(create_topic(bootstrap, f"{name}.dlq", 1))
    bad = [b"not json", b'{"event_type": "coverComplete", "cover_info": {"status": "FAILED"}}']
    asyncio.run(produce(bootstrap, name, [(None, v, 0) for v in bad]))
    config = daemon_config(tmp_path, bootstrap, name, name, "tests.handlers:random_delay")
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 2, 60, "both dead-lettered")
    daemon.terminate()

    listed = operator_report(config, "dlq", "list")
    # A time without a zone, as an operator types it, on a machine twelve hours behind UTC:
    # read as that zone's, it would lie in the future and select nothing.
    since = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")
    recent = operator_report(
        config, "dlq", "replay", "--since", since, "--dry-run", tz="Etc/GMT+12"
    )
    dry = operator_report(config, "dlq", "replay", "--reason", "asset_id", "--dry-run")
    first = operator_report(config, "dlq", "replay", "--reason", "asset_id")
    second = operator_report(config, "dlq", "replay", "--reason", "asset_id")
    everything = operator_report(config, "dlq", "replay")

    assert "2 dead letters" in listed
    assert "cover_info.asset_id: Field required" in listed
    assert "2 would be replayed" in recent
    assert "1 would be replayed" in dry
    assert first.startswith("1 replayed")
    assert second.startswith("0 replayed")
    assert second.endswith("(1 replayed before)")
    assert everything.startswith("1 replayed")  # only the other one
    assert everything.endswith("(1 replayed before)")
    main = asyncio.run(read_topic(bootstrap, name))
    replays = [r for r in main if "cc-replay-of" in header_map(r)]
    assert sorted(r.value for r in replays) == sorted(bad)
    assert header_map(replays[0])["cc-replay-of"].startswith(f"{name}.dlq/0/")


def test_topics_ensure_creates_what_is_missing_and_is_idempotent(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 2))
    extra = {"topics": {"partitions": 2, "replication_factor": 1}}
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=extra)

    first = operator_report(config, "topics", "ensure")
    second = operator_report(config, "topics", "ensure")

    wanted = [name, *(f"{name}.retry.{t}" for t in ("1m", "10m", "1h")), f"{name}.dlq"]
    wanted.append(f"{name}.dlq.replays")
    assert first.splitlines() == [f"exists   {name}", *(f"created  {t}" for t in wanted[1:])]
    assert second.splitlines() == [f"exists   {t}" for t in wanted]
