"""The ``cover-consumer`` command line, run as a real process: exit codes, output, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.devtools.broker import create_topic, free_port
from consumer.logs import MASK
from tests.support import (
    REPO,
    Daemon,
    cover_event,
    daemon_config,
    produce,
)

CONFIG = REPO / "config" / "consumer.yaml"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The child's environment: no COVER_CONSUMER* variables but those a test sets."""
    for key in list(os.environ):
        if key.upper().startswith("COVER_CONSUMER"):
            monkeypatch.delenv(key)  # also for tests.support.Daemon, which copies os.environ
    empty = tmp_path / "no-secrets"
    empty.mkdir()
    # Never pick up a real /etc/cover-consumer/secrets on the test host.
    return {**os.environ, "PYTHONPATH": str(REPO), "COVER_CONSUMER_SECRETS_DIR": str(empty)}


@pytest.fixture
def secret() -> str:
    return f"S3cr3t-{uuid.uuid4().hex}"


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line, parsed; fails on the first line that is not a JSON object."""
    parsed = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


# --- check-config --------------------------------------------------------------------------


def test_check_config_prints_the_effective_config_as_yaml(env: dict[str, str]) -> None:
    result = cli("check-config", "--config", str(CONFIG), env=env)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    printed = yaml.safe_load(result.stdout)
    expected = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert printed["kafka"]["group_id"] == expected["kafka"]["group_id"]
    assert printed["kafka"]["bootstrap_servers"] == expected["kafka"]["bootstrap_servers"]
    assert printed["consumer"] == expected["consumer"]


def test_check_config_reads_the_file_named_by_the_environment(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"kafka": {"group_id": "from-env-file"}})

    result = cli("check-config", env={**env, "COVER_CONSUMER_CONFIG": str(config)})

    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["kafka"]["group_id"] == "from-env-file"


@pytest.mark.parametrize("source", ["yaml file", "environment", "secret file"])
def test_check_config_masks_a_secret_whatever_its_source(
    env: dict[str, str], tmp_path: Path, secret: str, source: str
) -> None:
    args = ["check-config"]
    if source == "yaml file":
        config = write_yaml(tmp_path / "c.yaml", {"kafka": {"sasl_password": secret}})
        args += ["--config", str(config)]
    elif source == "environment":
        env = {**env, "COVER_CONSUMER__KAFKA__SASL_PASSWORD": secret}
    else:
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "kafka__sasl_password").write_text(secret + "\n", encoding="utf-8")
        env = {**env, "COVER_CONSUMER_SECRETS_DIR": str(secrets)}

    result = cli(*args, env=env)

    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    assert yaml.safe_load(result.stdout)["kafka"]["sasl_password"] == MASK


# --- invalid configs -----------------------------------------------------------------------


def test_unknown_key_deep_in_the_config_exits_2_naming_its_dotted_path(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write_yaml(
        tmp_path / "c.yaml", {"routes": [{"match": {"colour": "red"}, "handlers": ["log"]}]}
    )

    result = cli("check-config", "--config", str(config), env=env)

    assert result.returncode == 2
    assert "routes.0.match.colour: unknown key" in result.stderr
    assert result.stdout == ""


def test_invalid_config_holding_a_secret_exits_2_without_echoing_it(
    env: dict[str, str], tmp_path: Path, secret: str
) -> None:
    # The secret is also the offending value of other keys, as a mis-indented file would do.
    config = write_yaml(
        tmp_path / "c.yaml",
        {
            "kafka": {
                "sasl_password": secret,
                "session_timeout_ms": secret,
                "security_protocol": secret,
            },
            "consumer": {"max_in_flight": 0},
        },
    )

    result = cli("check-config", "--config", str(config), env=env)

    assert result.returncode == 2
    assert "kafka.session_timeout_ms" in result.stderr
    assert "kafka.security_protocol" in result.stderr
    assert "consumer.max_in_flight" in result.stderr
    assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("sigil", ["*", "!"])
def test_yaml_syntax_error_on_a_secret_does_not_echo_it(
    env: dict[str, str], tmp_path: Path, secret: str, sigil: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"kafka:\n  sasl_password: {sigil}{secret}\n", encoding="utf-8")

    result = cli("check-config", "--config", str(config), env=env)

    assert result.returncode == 2
    assert "invalid YAML" in result.stderr
    assert secret not in result.stderr


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_missing_config_file_exits_2_naming_the_file(
    env: dict[str, str], tmp_path: Path, how: str
) -> None:
    missing = tmp_path / "nowhere.yaml"
    args = ["check-config"]
    if how == "argument":
        args += ["--config", str(missing)]
    else:
        env = {**env, "COVER_CONSUMER_CONFIG": str(missing)}

    result = cli(*args, env=env)

    assert result.returncode == 2
    assert result.stderr.strip() == f"cover-consumer: config file not found: {missing}"


def test_check_config_resolves_handlers_and_exits_2_on_an_unknown_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"routes": [{"handlers": ["log", "no_such_one"]}]})

    result = cli("check-config", "--config", str(config), env=env)

    assert result.returncode == 2
    assert "handler 'no_such_one'" in result.stderr
    assert result.stdout == ""


def test_run_with_an_invalid_config_exits_2_without_a_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write_yaml(tmp_path / "c.yaml", {"kafka": {"sasl": {"user": "x"}}})

    result = cli("run", "--config", str(config), env=env)

    assert result.returncode == 2
    assert "kafka.sasl: unknown key" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_run_with_an_unknown_handler_exits_2_before_connecting(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Nothing listens there: had the daemon tried to connect, it would exit 1.
    config = write_yaml(
        tmp_path / "c.yaml",
        {
            "kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}"},
            "routes": [{"handlers": ["no_such_one"]}],
        },
    )

    result = cli("run", "--config", str(config), env=env)

    assert result.returncode == 2
    assert "handler 'no_such_one'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# --- usage ---------------------------------------------------------------------------------


def test_help_lists_the_commands_and_documents_exit_codes(env: dict[str, str]) -> None:
    result = cli("--help", env=env)

    assert result.returncode == 0
    assert "run" in result.stdout
    assert "check-config" in result.stdout
    assert "Exit codes: 0 clean shutdown, 1 fatal error, 2 invalid config or usage" in " ".join(
        result.stdout.split()
    )
    assert "130" in result.stdout


def test_no_command_is_a_usage_error_with_exit_2(env: dict[str, str]) -> None:
    result = cli(env=env)

    assert result.returncode == 2
    assert "usage: cover-consumer" in result.stderr


# --- run -----------------------------------------------------------------------------------


class EnvConfigDaemon(Daemon):
    """``cover-consumer run`` finding its config through ``$COVER_CONSUMER_CONFIG``."""

    def __init__(self, config: Path, out: Path, env: dict[str, str]) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run"],
            cwd=REPO,
            env={**env, "COVER_CONSUMER_CONFIG": str(config)},
            stdout=out.open("wb"),
            stderr=subprocess.STDOUT,
        )


def test_run_consumes_logs_only_json_lines_and_exits_0_on_sigterm(
    bootstrap: str, name: str, tmp_path: Path, env: dict[str, str]
) -> None:
    count = 5
    asyncio.run(create_topic(bootstrap, name, 1))
    asyncio.run(
        produce(bootstrap, name, [(None, cover_event(f"a{i}"), None) for i in range(count)])
    )
    config = daemon_config(tmp_path, bootstrap, name, name, "log")
    daemon = EnvConfigDaemon(config, tmp_path / "daemon.log", env)
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
    daemon = Daemon(
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


def test_run_exits_1_with_a_fatal_error_line_when_no_broker_answers(
    env: dict[str, str], tmp_path: Path
) -> None:
    config = write_yaml(
        tmp_path / "c.yaml",
        {"kafka": {"bootstrap_servers": f"127.0.0.1:{free_port()}", "request_timeout_ms": 1000}},
    )

    result = cli("run", "--config", str(config), env=env, timeout=30)

    assert result.returncode == 1
    assert result.stderr == ""
    lines = json_lines(result.stdout)
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
        daemon = Daemon(config, out, env=env)
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
    daemon = Daemon(config, tmp_path / "daemon.log", env=env)
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
