"""Records a sender chose to make hard, against a daemon process on the real broker: each
gets a final outcome, the daemon keeps going, and nothing around them is lost."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from pathlib import Path

import psutil
from aiokafka import AIOKafkaProducer

from consumer.devtools.broker import create_topic
from consumer.logs import MASK
from tests.support import (
    cli,
    committed,
    cover_event,
    daemon_config,
    header_map,
    produce,
    produce_raw_header_keys,
    read_topic,
    start_daemon,
)


def test_a_binary_header_key_is_dead_lettered_and_its_batch_neighbours_processed(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    bad = cover_event("bad")
    produce_raw_header_keys(
        bootstrap,
        name,
        [
            (cover_event("before"), []),
            (bad, [(b"\xff\xfe", b"v"), (b"traceparent", b"00-abc-def-01")]),
            (cover_event("after"), [(b"tenant", b"t1")]),
        ],
    )
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 3, 60, "three outcomes")
    daemon.wait_for(
        lambda: asyncio.run(committed(bootstrap, name, name, 1))[0] == 3, 30, "the commit"
    )
    code, _ = daemon.terminate()

    by_asset = {line["asset_id"]: line for line in daemon.outcomes()}
    assert by_asset["before"]["outcome"] == by_asset["after"]["outcome"] == "done"
    [dead] = [line for line in daemon.outcomes() if line["outcome"] == "dead_lettered"]
    assert dead["offset"] == 1
    assert dead["reason"] == "header key is not UTF-8: b'\\xff\\xfe'"
    assert daemon.events("fatal_error") == []
    assert code == 0
    [letter] = asyncio.run(read_topic(bootstrap, f"{name}.dlq"))
    assert letter.value == bad  # the raw bytes are kept
    headers = dict(letter.headers)
    assert headers["cc-invalid-key-fffe"] == b"v"  # the key's bytes, in hex, and its value
    assert headers["traceparent"] == b"00-abc-def-01"


def test_a_null_history_header_is_dead_lettered_with_the_reason_never_failed(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))

    async def send() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                name, cover_event("null"), partition=0, headers=[("cc-origin-topic", None)]
            )
        finally:
            await producer.stop()

    asyncio.run(send())
    asyncio.run(produce(bootstrap, name, [(None, cover_event("next"), 0)]))
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 2, 60, "two outcomes")
    daemon.terminate()

    outcomes = {line["offset"]: line for line in daemon.outcomes()}
    assert outcomes[0]["outcome"] == "dead_lettered"
    assert outcomes[0]["reason"] == "header cc-origin-topic has no value"
    assert outcomes[1]["outcome"] == "done"
    assert "failed" not in {line["outcome"] for line in daemon.outcomes()}
    [letter] = asyncio.run(read_topic(bootstrap, f"{name}.dlq"))
    assert header_map(letter)["cc-reason"] == "header cc-origin-topic has no value"


def test_a_dead_letter_over_the_producer_limit_is_written_truncated_not_retried_for_ever(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    event = json.loads(cover_event("big"))
    event["cover_info"]["title"] = "x" * 1_048_250  # fits 1 MiB; its dead letter does not
    big = json.dumps(event).encode()
    records = [(None, big, 0), (None, cover_event("next"), 0)]
    asyncio.run(produce(bootstrap, name, records, max_request_size=2**21))
    config = daemon_config(tmp_path, bootstrap, name, name, "tests.handlers:gives_up")
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 2, 60, "two outcomes")
    daemon.wait_for(
        lambda: asyncio.run(committed(bootstrap, name, name, 1))[0] == 2, 30, "the commit"
    )
    daemon.terminate()

    first = daemon.outcomes()[0]
    assert first["outcome"] == "dead_lettered"
    assert "value truncated to" in first["reason"]
    assert daemon.events("side_write_failed") == []  # refused once, never retried
    letters = asyncio.run(read_topic(bootstrap, f"{name}.dlq"))
    assert len(letters) == 2  # the big one once, and the next (the handler fails all)
    [head] = [letter for letter in letters if "cc-value-length" in header_map(letter)]
    headers = header_map(head)
    assert headers["cc-value-length"] == str(len(big))
    assert headers["cc-value-sha256"] == hashlib.sha256(big).hexdigest()
    assert big.startswith(head.value)


def test_a_secret_in_a_handlers_exception_reaches_no_header_and_no_report(
    bootstrap: str, name: str, tmp_path: Path, env: dict[str, str]
) -> None:
    secret = f"tok-{uuid.uuid4().hex}"
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(produce(bootstrap, name, [(None, cover_event("a1"), 0)]))
    extra = {
        "vod": {
            "endpoint": "http://127.0.0.1:9",
            "project_id": "p",
            "access_key": "ak",
            "secret_key": secret,
        },
        "retry": {"quick_base_delay": 0.01, "quick_budget": 1, "tiers": [{"delay": 0.2}]},
    }
    config = daemon_config(
        tmp_path, bootstrap, name, name, "tests.handlers:leaks_secret", extra=extra
    )
    daemon = start_daemon(config, tmp_path / "d.log", env={"TEST_LEAKED": secret})
    daemon.wait_for(lambda: bool(daemon.events("record_processed")), 60, "an outcome")
    daemon.wait_for(
        lambda: any(o["outcome"] == "dead_lettered" for o in daemon.outcomes()), 60, "the DLQ"
    )
    daemon.terminate()
    report = cli("dlq", "list", "--config", str(config), env=env)

    [letter] = asyncio.run(read_topic(bootstrap, f"{name}.dlq"))
    assert secret.encode() not in b"".join(value or b"" for _, value in letter.headers)
    assert header_map(letter)["cc-reason"].endswith(f"token {MASK} was refused")
    assert report.returncode == 0, report.stderr
    assert f"token {MASK} was refused" in report.stdout
    assert secret not in report.stdout + report.stderr
    assert secret not in daemon.out.read_text()


def test_huge_made_up_event_types_do_not_stay_in_the_daemons_memory(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    records = [
        (None, json.dumps({"event_type": f"{n:04d}" + "x" * 800_000, "x_info": {}}).encode(), 0)
        for n in range(150)
    ]
    asyncio.run(produce(bootstrap, name, records, max_request_size=2**21))
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 150, 120, "150 outcomes")
    rss = psutil.Process(daemon.pid).memory_info().rss
    daemon.terminate()

    assert {line["outcome"] for line in daemon.outcomes()} == {"done"}
    # 150 x 800 KB remembered would be 120 MB on top of the daemon's ~60 MB.
    assert rss < 130 * 2**20, f"RSS {rss / 2**20:.0f} MiB"


def test_handlers_raising_cancelled_error_or_system_exit_stall_nothing(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 2))
    asyncio.run(produce(bootstrap, name, [(None, cover_event(f"a{i}"), None) for i in range(200)]))
    extra = {"retry": {"quick_base_delay": 0.001, "tiers": []}}
    handler = "tests.handlers:cancels_itself"
    config = daemon_config(tmp_path, bootstrap, name, name, handler, max_in_flight=8, extra=extra)
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 200, 60, "200 outcomes")
    daemon.wait_for(
        lambda: (
            sum(o or 0 for o in asyncio.run(committed(bootstrap, name, name, 2)).values()) == 200
        ),
        30,
        "every offset committed",
    )
    code, _ = daemon.terminate()

    outcomes = {line["asset_id"]: line for line in daemon.outcomes()}
    rude = [f"a{i}" for i in range(200) if i % 10 in (0, 3, 7)]
    assert {outcomes[a]["outcome"] for a in rude} == {"dead_lettered"}
    assert {outcomes[a]["error"] for a in rude} == {"CancelledError", "SystemExit"}
    assert all(outcomes[a]["handler"] == handler for a in rude)
    assert sum(1 for line in outcomes.values() if line["outcome"] == "done") == 200 - len(rude)
    assert code == 0


def test_a_tier_record_with_a_forged_due_header_neither_crashes_nor_holds_its_tier(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    # "²" passes str.isdigit() but not int(): the consume loop raised, exit 1, at every
    # start. A due in the year 33658 held the tier partition, unfetched, for ever.
    tier = f"{name}.retry.1m"
    for topic in (name, tier):
        asyncio.run(create_topic(bootstrap, topic, 1))
    forged = [("cc-origin-topic", name.encode()), ("cc-due-ms", "²".encode())]
    far = [("cc-origin-topic", name.encode()), ("cc-due-ms", b"999999999999999")]

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            # Written a minute and a half ago: the 1m tier's delay is over.
            written = int(time.time() * 1000) - 90_000
            for asset, headers in (("forged", forged), ("far", far)):
                await producer.send_and_wait(
                    tier, cover_event(asset), headers=headers, timestamp_ms=written
                )
            await producer.send_and_wait(name, cover_event("main"))
        finally:
            await producer.stop()

    asyncio.run(send())
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    daemon = start_daemon(config, tmp_path / "d.log")
    daemon.wait_for(lambda: len(daemon.outcomes()) == 3, 60, "three outcomes")
    code, _ = daemon.terminate()

    assert {(line["asset_id"], line["outcome"]) for line in daemon.outcomes()} == {
        ("forged", "done"),
        ("far", "done"),
        ("main", "done"),
    }
    assert daemon.events("fatal_error") == []
    assert code == 0
