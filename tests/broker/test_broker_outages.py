"""The broker away at start or mid-run, against a daemon process: it waits (alive, not
ready), tells the truth on /readyz, and picks up where it was once the broker is back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from consumer.devtools.broker import create_topic, free_port
from tests.support import (
    Proxy,
    cover_event,
    daemon_config,
    http_get,
    produce,
    start_daemon,
    wait_for,
)


def test_a_broker_down_at_start_is_waited_for_alive_not_ready_then_consumed(
    behind_proxy: tuple[Proxy, str], name: str, tmp_path: Path
) -> None:
    proxy, bootstrap = behind_proxy
    port = free_port()
    extra = {"http": {"port": port}}
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=extra)
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.events("broker_unavailable")) >= 2, 30, "two tries")

    assert http_get(port, "/livez") == (200, "starting")
    assert http_get(port, "/readyz") == (503, "not yet in the consumer group")
    proxy.up()
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(produce(bootstrap, name, [(None, cover_event("a1"), 0)]))
    daemon.wait_for(lambda: len(daemon.outcomes()) == 1, 60, "the record")
    wait_for(lambda: http_get(port, "/readyz") == (200, "ok"), 15, "ready")
    code, _ = daemon.terminate()

    assert code == 0
    assert daemon.events("fatal_error") == []


def test_sigterm_while_waiting_for_the_broker_exits_0_at_once(name: str, tmp_path: Path) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    daemon = start_daemon(config, tmp_path / "d.log")
    # Four tries take 3.5 s: longer than the readiness probe's 2 s interval.
    daemon.wait_for(lambda: len(daemon.events("broker_unavailable")) >= 4, 30, "four tries")

    code, seconds = daemon.terminate(timeout=10)

    assert (code, seconds < 3) == (0, True)
    assert daemon.events("shutdown")[-1]["reason"] == "signal before the consumer started"
    # One warning line a try says it: no library ERROR lines beside them.
    assert [line for line in daemon.lines() if line["level"] == "error"] == []


def test_readyz_fails_while_the_replica_is_cut_off_and_recovers_after(
    behind_proxy: tuple[Proxy, str], name: str, tmp_path: Path
) -> None:
    proxy, bootstrap = behind_proxy
    proxy.up()
    asyncio.run(create_topic(bootstrap, name, 1))
    port = free_port()
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra={"http": {"port": port}})
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(daemon.joined, 60, "join")
    wait_for(lambda: http_get(port, "/readyz") == (200, "ok"), 15, "ready")

    proxy.down()
    wait_for(lambda: http_get(port, "/readyz")[0] == 503, 20, "not ready during the cut")
    status, why = http_get(port, "/readyz")
    assert (status, why.startswith("broker unreachable for")) == (503, True)
    assert http_get(port, "/livez")[0] == 200  # a cut is no reason to restart the pod
    proxy.up()
    wait_for(lambda: http_get(port, "/readyz") == (200, "ok"), 30, "ready again")
    daemon.terminate()
