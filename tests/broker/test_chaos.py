"""Faults counted end to end with real processes: every record produced reaches its one
outcome, every dead letter is seen by the operator tools."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from consumer.devtools.broker import create_topic, fetch_all, free_port
from tests.support import (
    Proxy,
    committed,
    cover_event,
    daemon_config,
    header_map,
    http_get,
    operator_report,
    produce,
    start_daemon,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_every_dead_letter_is_listed_and_replayed_once_when_written_in_batches(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    # The daemon writes dead letters concurrently, so the producer packs several into one
    # batch: the tools must read past the last batch's first record.
    total = 40
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(create_topic(bootstrap, f"{name}.dlq", 1))
    asyncio.run(produce(bootstrap, name, [(b"k%d" % i, b"not json", 0) for i in range(total)]))
    extra = {"dead_letter": {"guard_min_records": 1000}}
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=extra)
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == total, 60, "every record dead-lettered")
    daemon.terminate()
    letters = asyncio.run(fetch_all(bootstrap, f"{name}.dlq"))
    assert len(letters) == total

    listed = operator_report(config, "dlq", "list")
    first = operator_report(config, "dlq", "replay")
    second = operator_report(config, "dlq", "replay")

    assert listed.startswith(f"{total} dead letters")
    assert first.startswith(f"{total} replayed")
    assert second.startswith("0 replayed")
    main = asyncio.run(fetch_all(bootstrap, name))
    replays = [header_map(r)["cc-replay-of"] for r in main if "cc-replay-of" in header_map(r)]
    assert sorted(replays) == sorted(f"{name}.dlq/0/{r.offset}" for r in letters)


def test_a_record_finished_while_cut_off_keeps_the_loop_live_and_is_committed_after(
    behind_proxy: tuple[Proxy, str], name: str, tmp_path: Path
) -> None:
    # Once a record finishes, a commit falls due; aiokafka retries it until the broker
    # answers. Awaited in the loop, that froze it for the whole cut: /livez failed, and
    # Kubernetes would restart every replica of a group cut off from its broker.
    proxy, bootstrap = behind_proxy
    proxy.up()
    asyncio.run(create_topic(bootstrap, name, 1))
    port, liveness = free_port(), 8
    extra = {"http": {"port": port, "liveness_timeout": liveness}}
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:stall_marked", extra=extra
    )
    daemon = start_daemon(config, tmp_path / "d.log", env={"TEST_STALL_S": "2"})
    daemon.wait_for(daemon.joined, 60, "join")
    values = [cover_event(f"a{i}") for i in range(5)] + [cover_event("stall")]
    asyncio.run(produce(bootstrap, name, [(None, v, 0) for v in values]))
    daemon.wait_for(lambda: len(daemon.outcomes()) == 5, 60, "all but the slow record")

    proxy.down()
    daemon.wait_for(lambda: len(daemon.outcomes()) == 6, 30, "the slow record, cut off")
    answers = []
    cut_until = time.monotonic() + 1.5 * liveness
    while time.monotonic() < cut_until:
        answers.append(http_get(port, "/livez"))
        time.sleep(0.5)
    assert http_get(port, "/readyz")[0] == 503
    proxy.up()
    wait_for(lambda: http_get(port, "/readyz") == (200, "ok"), 30, "ready again")
    wait_for(lambda: asyncio.run(committed(bootstrap, name, name, 1))[0] == 6, 30, "the commit")
    code, _ = daemon.terminate()

    assert [a for a in answers if a != (200, "ok")] == []
    assert code == 0
