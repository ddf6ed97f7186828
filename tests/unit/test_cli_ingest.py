"""``cover-consumer ingest`` on the command line: listed, and a config it cannot use
refused with exit code 2 before anything listens."""

from __future__ import annotations

from pathlib import Path

from consumer.devtools.broker import free_port
from consumer.errors import ExitCode
from tests.support import cli, write_yaml


def test_the_ingest_command_is_listed(env: dict[str, str]) -> None:
    result = cli("--help", env=env)

    assert result.returncode == 0
    assert "ingest" in result.stdout


def test_a_certificate_file_that_is_not_pem_exits_2_naming_its_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "smn.pem"
    bad.write_text("not a certificate", encoding="utf-8")
    config = write_yaml(
        tmp_path / "c.yaml",
        {"ingest": {"port": free_port(), "smn": {"certificates": [str(bad)]}}},
    )

    result = cli("ingest", "--config", str(config), env=env, timeout=30)

    assert result.returncode == ExitCode.CONFIG
    assert "ingest.smn.certificates.0: not a PEM certificate" in result.stderr


def test_a_tls_key_that_does_not_load_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("garbage", encoding="utf-8")
    tls = {"certfile": str(tmp_path / "cert.pem"), "keyfile": str(tmp_path / "key.pem")}
    config = write_yaml(tmp_path / "c.yaml", {"ingest": {"port": free_port(), "tls": tls}})

    result = cli("ingest", "--config", str(config), env=env, timeout=30)

    assert result.returncode == ExitCode.CONFIG
    assert "ingest.tls: cannot load certfile and keyfile" in result.stderr
