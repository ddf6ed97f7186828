"""consumer.config: sources, precedence, error messages and secret handling."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from consumer.config import (
    KafkaSettings,
    MatchSpec,
    Settings,
    load_settings,
    render_masked,
    secret_values,
)
from consumer.errors import ConfigError
from tests.support import REPO

SECRET = "s3cr3t-Pa55w0rd-xyzzy"
SASL_YAML = f"""
kafka:
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username: cover
  sasl_password: {SECRET}
"""


pytestmark = pytest.mark.usefixtures("config_env")


def write(tmp_path: Path, text: str, name: str = "consumer.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_no_file_gives_embedded_defaults() -> None:
    settings = load_settings(None)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert settings.consumer.max_in_flight == 256
    assert settings.consumer.max_pending_per_partition == 1000
    assert settings.log.format == "json"
    assert settings.routes is None


def test_yaml_values_load_and_the_rest_keeps_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  topic: other\nconsumer:\n  commit_interval: 2.5\n")
    settings = load_settings(path)
    assert settings.kafka.topic == "other"
    assert settings.consumer.commit_interval == 2.5
    assert settings.kafka.group_id == "cover-consumer"


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()


def test_env_overrides_nested_yaml_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "consumer:\n  max_in_flight: 10\n  fetch_max_records: 7\n")
    monkeypatch.setenv("COVER_CONSUMER__CONSUMER__MAX_IN_FLIGHT", "64")
    settings = load_settings(path)
    assert settings.consumer.max_in_flight == 64
    assert settings.consumer.fetch_max_records == 7  # sibling from YAML survives


def test_env_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("cover_consumer__kafka__bootstrap_servers", "a:1,b:2")
    assert load_settings(None).kafka.bootstrap_servers == "a:1,b:2"


def test_init_kwargs_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVER_CONSUMER__KAFKA__TOPIC", "from-env")
    assert Settings(kafka=KafkaSettings(topic="from-init")).kafka.topic == "from-init"


def test_config_env_var_picks_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVER_CONSUMER_CONFIG", str(write(tmp_path, "kafka:\n  topic: via-env\n")))
    assert load_settings(None).kafka.topic == "via-env"


def test_explicit_path_beats_config_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVER_CONSUMER_CONFIG", str(tmp_path / "absent.yaml"))
    path = write(tmp_path, "kafka:\n  topic: explicit\n")
    assert load_settings(path).kafka.topic == "explicit"


def test_secret_file_sets_nested_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka__sasl_password").write_text(SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("COVER_CONSUMER_SECRETS_DIR", str(secrets))
    password = load_settings(None).kafka.sasl_password
    assert password is not None
    assert password.get_secret_value() == SECRET


def test_secret_file_beats_yaml_and_env_beats_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka__sasl_username").write_text("from-file", encoding="utf-8")
    (secrets / "kafka__client_id").write_text("from-file", encoding="utf-8")
    monkeypatch.setenv("COVER_CONSUMER_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("COVER_CONSUMER__KAFKA__CLIENT_ID", "from-env")
    path = write(tmp_path, "kafka:\n  sasl_username: from-yaml\n  client_id: from-yaml\n")
    settings = load_settings(path)
    assert settings.kafka.sasl_username == "from-file"
    assert settings.kafka.client_id == "from-env"


def test_missing_secrets_dir_is_not_an_error() -> None:
    assert load_settings(None).kafka.sasl_password is None


def test_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVER_CONSUMER__KAFKA__SASL_PASSWORD", SECRET)
    password = load_settings(None).kafka.sasl_password
    assert password is not None
    assert password.get_secret_value() == SECRET


def test_unknown_top_level_key_names_it(tmp_path: Path) -> None:
    assert "kafak: unknown key" in config_error(write(tmp_path, "kafak:\n  topic: x\n"))


def test_unknown_nested_key_gives_dotted_path(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "kafka:\n  bootstrap_server: x:1\n"))
    assert "kafka.bootstrap_server: unknown key" in message


def test_unknown_key_deep_in_routes_gives_dotted_path(tmp_path: Path) -> None:
    text = "routes:\n  - match: {colour: red}\n    handlers: [h]\n"
    assert "routes.0.match.colour: unknown key" in config_error(write(tmp_path, text))


def test_every_error_is_reported_one_per_line(tmp_path: Path) -> None:
    text = "consumer:\n  max_in_flight: 0\n  poll_timeout: -1\n"
    lines = config_error(write(tmp_path, text)).splitlines()
    assert any(line.startswith("consumer.max_in_flight: ") for line in lines)
    assert any(line.startswith("consumer.poll_timeout: ") for line in lines)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"config file not found: {path}"


def test_yaml_syntax_error_names_the_line_without_quoting_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"kafka:\n  sasl_password: {SECRET}: oops\n")
    message = config_error(path)
    assert "line 2, column" in message
    assert SECRET not in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "top level must be a mapping" in config_error(write(tmp_path, "- a\n- b\n"))


def test_malformed_secret_value_is_not_echoed(tmp_path: Path) -> None:
    text = f"kafka:\n  sasl_password:\n    nested: {SECRET}\n"
    message = config_error(write(tmp_path, text))
    assert "kafka.sasl_password: " in message
    assert SECRET not in message


def test_error_next_to_a_secret_does_not_echo_it(tmp_path: Path) -> None:
    text = SASL_YAML + "  session_timeout_ms: not-a-number\n  colour: red\n"
    message = config_error(write(tmp_path, text))
    assert "kafka.session_timeout_ms: " in message
    assert "kafka.colour: unknown key" in message
    assert SECRET not in message


def test_secret_in_unknown_key_value_is_not_echoed(tmp_path: Path) -> None:
    text = f"kafka:\n  sasl_pasword: {SECRET}\n"
    message = config_error(write(tmp_path, text))
    assert "kafka.sasl_pasword: unknown key" in message
    assert SECRET not in message


def test_sasl_without_password_names_the_key(tmp_path: Path) -> None:
    text = SASL_YAML.replace(f"  sasl_password: {SECRET}\n", "")
    message = config_error(write(tmp_path, text))
    assert "kafka.sasl_password: required" in message
    assert "kafka.sasl_username" not in message


def test_sasl_with_all_credentials_loads(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, SASL_YAML)).kafka.sasl_mechanism == "SCRAM-SHA-512"


def test_render_masked_hides_secrets(tmp_path: Path) -> None:
    rendered = render_masked(load_settings(write(tmp_path, SASL_YAML)))
    assert SECRET not in rendered
    assert "sasl_password: '**********'" in rendered
    assert "ssl_password: null" in rendered


def test_render_masked_round_trips_through_load(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "kafka:\n  ssl_cafile: /ca.pem\nlog:\n  level: debug\n")
    )
    reloaded = load_settings(write(tmp_path, render_masked(settings), "rendered.yaml"))
    assert reloaded == settings


def test_secret_values_from_yaml_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "kafka__ssl_password").write_text("key-pass-from-file\n", encoding="utf-8")
    monkeypatch.setenv("COVER_CONSUMER_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("COVER_CONSUMER__KAFKA__SASL_USERNAME", "not-a-secret")
    from_yaml = load_settings(write(tmp_path, SASL_YAML))
    assert set(secret_values(from_yaml)) == {SECRET, "key-pass-from-file"}

    monkeypatch.setenv("COVER_CONSUMER__KAFKA__SASL_PASSWORD", "pw-from-env")
    from_env = load_settings(write(tmp_path, SASL_YAML))
    assert set(secret_values(from_env)) == {"pw-from-env", "key-pass-from-file"}


def test_secret_values_walks_models_generically() -> None:
    settings = Settings(kafka=KafkaSettings(ssl_password=SecretStr("ab"), sasl_password=None))
    assert secret_values(settings) == ["ab"]
    assert secret_values(Settings()) == []


def test_log_level_accepts_lowercase(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "log:\n  level: warning\n")).log.level == "WARNING"


def test_log_level_rejects_unknown(tmp_path: Path) -> None:
    assert "log.level: " in config_error(write(tmp_path, "log:\n  level: loud\n"))


def test_routes_parse_with_match_fields(tmp_path: Path) -> None:
    text = (
        "routes:\n"
        "  - match: {event_type: cover_updated, status: ok, cover_type: thumbnail}\n"
        "    handlers: [refresh, notify]\n"
        "  - handlers: [fallback]\n"
    )
    routes = load_settings(write(tmp_path, text)).routes
    assert routes is not None
    assert routes[0].match == MatchSpec(
        event_type="cover_updated", status="ok", cover_type="thumbnail"
    )
    assert routes[0].handlers == ["refresh", "notify"]
    assert routes[1].match == MatchSpec()


@pytest.mark.parametrize("handlers", ["[]", "['']"])
def test_route_needs_a_non_empty_handler(tmp_path: Path, handlers: str) -> None:
    text = f"routes:\n  - handlers: {handlers}\n"
    assert "routes.0.handlers" in config_error(write(tmp_path, text))


def test_settings_are_frozen() -> None:
    settings = load_settings(None)
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka.topic = "x"  # type: ignore[misc]


def test_shipped_production_config_loads() -> None:
    settings = load_settings(REPO / "config" / "consumer.yaml")
    assert settings.log.format == "json"
    assert render_masked(settings)  # every shipped key round-trips through the model


def test_shipped_production_config_sets_every_key() -> None:
    shipped = yaml.safe_load((REPO / "config" / "consumer.yaml").read_text(encoding="utf-8"))
    every = yaml.safe_load(render_masked(Settings()))
    assert set(shipped) == set(every)
    for section, keys in every.items():
        if isinstance(keys, dict):
            assert set(shipped[section]) == set(keys), section


def test_shipped_local_config_loads() -> None:
    settings = load_settings(REPO / "config" / "local.yaml")
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.log.format == "console"
