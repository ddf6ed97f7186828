"""Values no client, protocol or file reader can take are refused at start (exit 2) naming
the key, never a traceback or a value, however the type checker would coerce them."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.config import load_settings
from consumer.errors import ConfigError
from tests.support import CONFIG_SECRET as SECRET
from tests.support import config_refused as refused

pytestmark = pytest.mark.usefixtures("config_env")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("vod:\n  max_concurrent_calls: true\n", "vod.max_concurrent_calls: must be a number"),
        ("covers:\n  min_offset_seconds: true\n", "covers.min_offset_seconds: must be a number"),
        ("covers:\n  snapshot_offsets: [true, 5]\n", "covers.snapshot_offsets.0: must be a"),
    ],
)
def test_true_is_not_a_number_in_the_vod_sections_either(
    tmp_path: Path, text: str, key: str
) -> None:
    assert key in refused(tmp_path, text)


@pytest.mark.parametrize(
    "key",
    [
        "kafka.session_timeout_ms",
        "kafka.max_poll_interval_ms",
        "kafka.request_timeout_ms",
        "kafka.fetch_max_bytes",
        "kafka.max_partition_fetch_bytes",
        "topics.partitions",
    ],
)
def test_a_kafka_value_over_the_protocols_int32_is_refused(tmp_path: Path, key: str) -> None:
    # aiokafka packs these as Int32: 2**31 failed at the first JoinGroup, Fetch or
    # CreateTopics with a struct error, long after start.
    section, name = key.split(".")
    assert f"{key}: Input should be less than or equal to 2147483647" in refused(
        tmp_path, f"{section}:\n  {name}: 2147483648\n"
    )


def test_a_replication_factor_over_int16_is_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, "topics:\n  replication_factor: 32768\n")

    assert "topics.replication_factor: Input should be less than or equal to 32767" in message


def test_the_largest_int32_values_are_taken(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "kafka:\n  session_timeout_ms: 2147483647\n  fetch_max_bytes: 2147483647\n",
        encoding="utf-8",
    )

    assert load_settings(path).kafka.session_timeout_ms == 2**31 - 1


def test_a_secret_file_that_is_not_utf8_is_refused_naming_it(config_env: Path) -> None:
    config_env.mkdir()
    (config_env / "kafka__sasl_password").write_bytes(b"\xff\xfe" + SECRET.encode())

    with pytest.raises(ConfigError) as info:
        load_settings(None)

    assert f"secret file {config_env / 'kafka__sasl_password'}: not UTF-8" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_binary_file_of_someone_else_in_the_secret_is_left_alone(config_env: Path) -> None:
    # A Secret shared with another program: a PKCS#12 keystore, a DER certificate.
    config_env.mkdir()
    (config_env / "keystore.p12").write_bytes(b"\x30\x82\xff\xfe")
    (config_env / "kafka__sasl_password").write_text(SECRET + "\n", encoding="utf-8")

    password = load_settings(None).kafka.sasl_password

    assert password is not None
    assert password.get_secret_value() == SECRET
