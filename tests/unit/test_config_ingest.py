"""The ``ingest`` section: defaults, where the MFS key comes from, and refusals that name
the dotted key and never the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.config import load_settings, render_masked, secret_values
from consumer.errors import ConfigError

KEY = "mfs-K3y-from-the-console"


pytestmark = pytest.mark.usefixtures("config_env")  # no COVER_CONSUMER* of this shell


def load(tmp_path: Path, text: str) -> str:
    """The ConfigError's message for ``text`` as the config file."""
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_defaults_are_the_documented_ones() -> None:
    ingest = load_settings(None).ingest

    assert (ingest.port, ingest.max_body_bytes, ingest.answer_timeout) == (8081, 1 << 20, 4.0)
    assert ingest.smn.certificates == ()
    assert ingest.smn.topic_urns == ()
    assert ingest.smn.confirm_hosts == ("console.huaweicloud.com", "*-console.huaweicloud.com")
    assert ingest.mfs.key is None
    assert not ingest.tls.enabled


def test_the_mfs_key_comes_from_a_secret_file_and_is_masked(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ingest__mfs__key").write_text(KEY + "\n", encoding="utf-8")

    settings = load_settings(None)

    assert settings.ingest.mfs.key is not None
    assert settings.ingest.mfs.key.get_secret_value() == KEY
    assert KEY not in render_masked(settings)
    assert KEY in secret_values(settings)  # so every log line is scrubbed of it


def test_the_mfs_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVER_CONSUMER__INGEST__MFS__KEY", KEY)

    key = load_settings(None).ingest.mfs.key

    assert key is not None
    assert key.get_secret_value() == KEY


def test_lists_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVER_CONSUMER__INGEST__SMN__TOPIC_URNS", '["urn:smn:r:p:t"]')

    assert load_settings(None).ingest.smn.topic_urns == ("urn:smn:r:p:t",)


def test_an_empty_mfs_key_is_refused_naming_it_not_its_value(tmp_path: Path) -> None:
    message = load(tmp_path, 'ingest: {mfs: {key: "   "}}')

    assert "ingest.mfs.key: is empty" in message


def test_a_certificate_that_is_not_a_file_is_refused_naming_its_entry(tmp_path: Path) -> None:
    message = load(tmp_path, f"ingest: {{smn: {{certificates: [{tmp_path / 'nope.pem'}]}}}}")

    assert "ingest.smn.certificates: entry 0 is not a readable file" in message
    assert "nope.pem" not in message


def test_a_confirm_host_that_is_no_host_name_is_refused(tmp_path: Path) -> None:
    message = load(tmp_path, 'ingest: {smn: {confirm_hosts: ["https://x/y"]}}')

    assert "ingest.smn.confirm_hosts: entry 0 is not a host name" in message


def test_confirm_hosts_take_names_ports_and_the_two_wildcards(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    hosts = '["Console.HuaweiCloud.com", "*-console.example.com", "*.example.org", "h:8443"]'
    path.write_text(f"ingest: {{smn: {{confirm_hosts: {hosts}}}}}", encoding="utf-8")

    assert load_settings(path).ingest.smn.confirm_hosts == (
        "console.huaweicloud.com",
        "*-console.example.com",
        "*.example.org",
        "h:8443",
    )


def test_tls_needs_both_certfile_and_keyfile(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x", encoding="utf-8")

    assert "ingest.tls: certfile and keyfile go together" in load(
        tmp_path, f"ingest: {{tls: {{certfile: {cert}}}}}"
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("ingest: {port: true}", "ingest.port"),
        ("ingest: {answer_timeout: .inf}", "ingest.answer_timeout"),
        ("ingest: {max_body_bytes: 0}", "ingest.max_body_bytes"),
        ("ingest: {dedup_window: -1}", "ingest.dedup_window"),
        ("ingest: {smn: {fetch_certificate: true}}", "ingest.smn.fetch_certificate: unknown key"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    assert key in load(tmp_path, text)


def test_a_burst_below_the_rate_is_refused(tmp_path: Path) -> None:
    message = load(tmp_path, "ingest: {rate_per_source: 100, burst_per_source: 10}")

    assert "burst_per_source must be at least rate_per_source" in message
