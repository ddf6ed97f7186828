"""The ``vod`` section's authentication: AK/SK, permanent or temporary (with its security
token); no token mode; what cannot work refused at start, naming the key, no value echoed;
and which secret files the daemon reads the key from again."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.config import load_settings, render_masked, secret_file
from consumer.errors import ConfigError

SECRET = "s3cr3t-token-not-to-be-echoed"
VOD = "vod:\n  endpoint: https://vod.example\n  project_id: p\n"


pytestmark = pytest.mark.usefixtures("config_env")  # no COVER_CONSUMER* of this shell


def load(tmp_path: Path, text: str) -> str:
    """The rendered settings of ``text``, secrets masked."""
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return render_masked(load_settings(path))


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert SECRET not in str(info.value)
    return str(info.value)


def test_a_temporary_key_loads_with_its_security_token_masked(tmp_path: Path) -> None:
    text = f"{VOD}  access_key: ak\n  secret_key: sk\n  security_token: {SECRET}\n"

    rendered = load(tmp_path, text)

    assert "security_token: '**********'" in rendered
    assert SECRET not in rendered


@pytest.mark.parametrize(
    "text",
    [
        f"vod:\n  security_token: {SECRET}\n",  # refused with or without an endpoint
        f"{VOD}  access_key: ak\n  security_token: {SECRET}\n",
    ],
)
def test_a_security_token_without_its_key_pair_is_refused(tmp_path: Path, text: str) -> None:
    message = refused(tmp_path, text)

    assert "vod.security_token: a security token belongs to a temporary key" in message


def test_an_endpoint_without_a_key_pair_names_each_missing_key(tmp_path: Path) -> None:
    message = refused(tmp_path, f"{VOD}  access_key: ak\n")

    assert "vod.secret_key: required with vod.endpoint" in message
    assert "vod.access_key" not in message


def test_token_mode_is_refused_with_its_reason(tmp_path: Path) -> None:
    message = refused(tmp_path, f"{VOD}  auth_token: {SECRET}\n")

    assert "vod.auth_token: token mode was removed: an IAM token expires after 24 hours" in message


def test_token_mode_is_refused_from_a_secret_file_too(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "vod__auth_token").write_text(SECRET)

    assert "vod.auth_token: token mode was removed" in refused(tmp_path, VOD)


def test_the_rendered_config_has_no_token_key(tmp_path: Path) -> None:
    rendered = load(tmp_path, f"{VOD}  access_key: ak\n  secret_key: sk\n")

    assert "auth_token" not in rendered


def test_a_secret_given_by_a_file_is_read_again_from_that_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "vod__secret_key").write_text("sk")

    assert secret_file("vod.secret_key") == secrets / "vod__secret_key"
    assert secret_file("vod.security_token") is None  # no file: nothing to read again


def test_a_secret_the_environment_sets_is_not_read_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "vod__secret_key").write_text("from-the-file")
    monkeypatch.setenv("cover_consumer__vod__secret_key", "from-the-environment")

    assert secret_file("vod.secret_key") is None
