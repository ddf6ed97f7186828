"""``cover-consumer run`` as a real process against the broker: exit codes, lines, signals."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path

from consumer.devtools.broker import create_topic, free_port
from consumer.devtools.harness import DaemonProcess
from consumer.logs import MASK
from tests.support import (
    cli,
    cover_event,
    daemon_config,
    json_lines,
    produce,
    start_daemon,
    write_yaml,
)

# --- run -----------------------------------------------------------------------------------


def env_config_daemon(config: Path, out: Path, env: dict[str, str]) -> DaemonProcess:
    """``cover-consumer run`` finding its config through ``$COVER_CONSUMER_CONFIG``."""
    return DaemonProcess(out, {**env, "COVER_CONSUMER_CONFIG": str(config)})


def test_run_consumes_logs_only_json_lines_and_exits_0_on_sigterm(
    bootstrap: str, name: str, tmp_path: Path, env: dict[str, str]
) -> None:
    count = 5
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(
        produce(bootstrap, name, [(None, cover_event(f"a{i}"), None) for i in range(count)])
    )
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    daemon = env_config_daemon(config, tmp_path / "daemon.log", env)
    try:
        daemon.wait_for(lambda: len(daemon.outcomes()) >= count, 60, f"{count} outcomes")
        code, _ = daemon.terminate()
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    assert code == 0
    lines = json_lines(daemon.out.read_text(encoding="utf-8"))  # stderr included
    events = [line["event"] for line in lines]
    assert sorted(line["asset_id"] for line in daemon.outcomes()) == [f"a{i}" for i in range(count)]
    assert {line["outcome"] for line in daemon.outcomes()} == {"done"}
    assert any(event.startswith(f"Joined group '{name}'") for event in events), events
    assert events[-1] == "shutdown"
    assert "shutdown_requested" in events


def test_run_scrubs_a_configured_secret_from_aiokafka_lines(
    bootstrap: str, name: str, tmp_path: Path, env: dict[str, str]
) -> None:
    # No SASL on the test broker, so the secret to scrub is made the group id, which
    # aiokafka logs by itself ("Joined group '...'").
    group = f"{name}-grp"
    asyncio.run(create_topic(bootstrap, name, 1))
    config = daemon_config(tmp_path, bootstrap, name, group, "log")
    daemon = start_daemon(
        config, tmp_path / "daemon.log", env={**env, "COVER_CONSUMER__KAFKA__SASL_PASSWORD": group}
    )
    joined = f"Joined group '{MASK}'"
    try:
        daemon.wait_for(
            lambda: any(line["event"].startswith(joined) for line in daemon.lines()),
            60,
            "aiokafka's join line",
        )
        code, _ = daemon.terminate()
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    assert code == 0
    text = daemon.out.read_text(encoding="utf-8")
    assert group not in text
    assert daemon.events("consumer_started")[0]["group_id"] == MASK


def test_run_keeps_trying_an_absent_broker_then_exits_1_after_the_start_timeout(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write_yaml(
        tmp_path / "c.yaml",
        {
            "kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}", "request_timeout_ms": 1000},
            "consumer": {"start_timeout": 3},
        },
    )

    result = cli("run", "--config", str(config), env=env, timeout=30)

    assert result.returncode == 1
    assert result.stderr == ""
    lines = json_lines(result.stdout)
    tries = [line for line in lines if line["event"] == "broker_unavailable"]
    assert len(tries) >= 2, lines
    assert [t["attempt"] for t in tries] == list(range(1, len(tries) + 1))
    assert all(t["level"] == "warning" and t["error"] == "KafkaConnectionError" for t in tries)
    # One line a try: aiokafka's own connection errors stay quiet meanwhile.
    assert not [line for line in lines if line["event"].startswith("Unable connect")]
    fatal = [line for line in lines if line["event"] == "fatal_error"]
    assert len(fatal) == 1, lines
    assert fatal[0]["level"] == "error"
    assert fatal[0]["exception"][0]["exc_type"] == "KafkaConnectionError"
    assert "Traceback" not in result.stdout


def test_sigterm_while_bootstrapping_exits_0_and_logs_why(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "daemon.log"
    # A "broker" that accepts connections and never answers: start() hangs in bootstrap.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(30)
        config = write_yaml(
            tmp_path / "c.yaml",
            {
                "kafka": {
                    "bootstrap_servers": f"127.0.0.1:{silent.getsockname()[1]}",
                    "request_timeout_ms": 120_000,
                }
            },
        )
        daemon = start_daemon(config, out, env=env)
        try:
            connection, _ = silent.accept()  # the daemon is now waiting for an answer
            with connection:
                code, seconds = daemon.terminate(timeout=30)
        finally:
            if daemon.process.poll() is None:
                daemon.kill()

    assert code == 0
    assert seconds < 5
    lines = json_lines(out.read_text(encoding="utf-8"))
    assert lines[-1]["event"] == "shutdown"
    assert lines[-1]["reason"] == "signal before the consumer started"
    assert not any(line["event"] == "consumer_started" for line in lines)


def test_second_sigterm_during_the_drain_forces_exit_130(
    bootstrap: str, name: str, tmp_path: Path, env: dict[str, str]
) -> None:
    asyncio.run(create_topic(bootstrap, name, 1))
    # Offset 0 hangs for an hour; offset 1 is quick: its outcome proves offset 0 is in flight.
    asyncio.run(
        produce(bootstrap, name, [(None, cover_event("stall-0"), 0), (None, cover_event("a1"), 0)])
    )
    config = daemon_config(tmp_path, bootstrap, name, name, "tests.handlers:stall_marked")
    daemon = start_daemon(config, tmp_path / "daemon.log", env=env)
    try:
        daemon.wait_for(lambda: bool(daemon.outcomes()), 60, "the quick record's outcome")
        daemon.process.send_signal(signal.SIGTERM)
        daemon.wait_for(lambda: bool(daemon.events("shutdown_requested")), 10, "the first signal")
        code, seconds = daemon.terminate()  # the second signal
    finally:
        if daemon.process.poll() is None:
            daemon.kill()

    assert code == 130
    assert seconds < 2  # not the drain's budget
    assert [line["asset_id"] for line in daemon.outcomes()] == ["a1"]
    assert not daemon.events("shutdown")


def test_an_operator_commands_report_is_all_of_stdout_and_library_lines_go_to_stderr(
    bootstrap: str, name: str, tmp_path: Path, env: dict[str, str]
) -> None:
    asyncio.run(create_topic(bootstrap, f"{name}.dlq", 1))
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    # DEBUG: aiokafka says plenty; none of it may land in the report.
    text = config.read_text().replace("format: json", "format: json\n  level: DEBUG")
    config.write_text(text)

    result = cli("dlq", "list", "--config", str(config), env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"0 dead letters in {name}.dlq\n"
    assert any(
        json.loads(line).get("logger", "").startswith("aiokafka")
        for line in result.stderr.splitlines()
        if line.startswith("{")
    )
