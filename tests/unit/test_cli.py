"""The ``cover-consumer`` command line, run as a real process: exit codes, output, secrets."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import yaml

from consumer.devtools.broker import free_port
from consumer.logs import MASK
from tests.support import (
    REPO,
    cli,
    write_yaml,
)

CONFIG = REPO / "config" / "consumer.yaml"


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
    # No routes in the file: the defaults in force are shown, not `routes: null`.
    assert printed["routes"] == [
        {
            "match": {"event_type": "coverComplete", "cover_type": "HEAD_FRAME_COVER"},
            "handlers": ["log"],
        },
        {"match": {"event_type": "thumbnailComplete"}, "handlers": ["log"]},
    ]


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "[" * 5000, "nested deeper than 32 levels"),
        ("kafka: {topic: a}\nkafka: {topic: b}\n", "duplicate key 'kafka'"),
        ("consumer:\n  max_in_flight: true\n", "consumer.max_in_flight: must be a number"),
    ],
)
def test_config_that_cannot_work_exits_2_naming_the_problem_without_a_traceback(
    env: dict[str, str], tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")

    result = cli("run", "--config", str(path), env=env)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("key", ["ssl_cafile", "ssl_certfile", "ssl_keyfile"])
@pytest.mark.parametrize("command", ["run", "ingest"])
def test_run_with_a_kafka_tls_file_missing_exits_2_naming_the_key(
    env: dict[str, str], tmp_path: Path, key: str, command: str
) -> None:
    # It was a FileNotFoundError: exit 1 and a traceback naming no setting.
    kafka = {"security_protocol": "SSL", key: str(tmp_path / "missing.pem")}
    config = write_yaml(tmp_path / "c.yaml", {"kafka": kafka, "http": {"port": 0}})

    result = cli(command, "--config", str(config), env=env)

    assert result.returncode == 2
    assert f"kafka.{key}: not a readable file" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_run_with_a_kafka_ca_that_is_not_pem_exits_2_naming_the_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    kafka = {"security_protocol": "SSL", "ssl_cafile": str(tmp_path / "ca.pem")}
    config = write_yaml(tmp_path / "c.yaml", {"kafka": kafka, "http": {"port": 0}})

    result = cli("run", "--config", str(config), env=env)

    assert result.returncode == 2
    assert "kafka.ssl_cafile: cannot load the TLS files" in result.stderr


def test_version_prints_the_installed_version(env: dict[str, str]) -> None:
    result = cli("--version", env=env)

    assert result.returncode == 0
    assert result.stdout.strip() == f"cover-consumer {importlib.metadata.version('cover-consumer')}"


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["topics", "ensure"], "create the main, retry, dead-letter and replay topics"),
        (["dlq", "list"], "count dead letters by reason"),
        (["dlq", "replay"], "republish dead letters to the main topic"),
        (["demo"], "The whole loop on embedded defaults"),
    ],
)
def test_each_command_answers_help_with_its_own_description(
    env: dict[str, str], command: list[str], says: str
) -> None:
    result = cli(*command, "--help", env=env)

    assert result.returncode == 0
    assert says in " ".join(result.stdout.split())


def test_simulate_vod_documents_every_option_and_takes_no_secret_on_the_command_line(
    env: dict[str, str],
) -> None:
    result = cli("simulate-vod", "--help", env=env)

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    options = [n for n, line in enumerate(lines) if line.strip().startswith("--")]
    assert len(options) >= 10
    # Each option has its help text: on its line, or on the next (indented, no option).
    undocumented = [
        lines[n]
        for n in options
        if len(lines[n].split()) <= 2 and lines[n + 1].strip().startswith("--")
    ]
    assert undocumented == []
    assert "--secret-key " not in result.stdout
    assert "--secret-key-file" in result.stdout


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_dlq_replay_refuses_a_limit_below_one_before_connecting(
    env: dict[str, str], limit: str
) -> None:
    # "At most 0" replayed one dead letter: the limit was checked after taking each.
    env["COVER_CONSUMER__KAFKA__BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"

    result = cli("dlq", "replay", "--limit", limit, env=env, timeout=30)

    assert result.returncode == 2
    assert "--limit: at least 1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("topics", "ensure"), ("dlq", "list"), ("dlq", "replay")])
def test_an_operator_command_without_a_broker_exits_1_with_one_line_and_no_traceback(
    env: dict[str, str], secret: str, command: tuple[str, str]
) -> None:
    env["COVER_CONSUMER__KAFKA__BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"
    env["COVER_CONSUMER__KAFKA__SASL_USERNAME"] = "u"  # SASL, so a password is configured
    env["COVER_CONSUMER__KAFKA__SASL_PASSWORD"] = secret
    env["COVER_CONSUMER__KAFKA__SASL_MECHANISM"] = "PLAIN"
    env["COVER_CONSUMER__KAFKA__SECURITY_PROTOCOL"] = "SASL_PLAINTEXT"

    result = cli(*command, env=env, timeout=60)

    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr
    assert secret not in result.stderr
    failure = [line for line in result.stderr.splitlines() if "fatal_error" in line]
    assert len(failure) == 1
    assert "KafkaConnectionError" in failure[0]
