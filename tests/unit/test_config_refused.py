"""Configuration that cannot work is refused at start: the key named, no value echoed,
no traceback, and quickly, whatever the file holds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from consumer.config import load_settings
from consumer.dispatch.routing import routes_for
from consumer.errors import ConfigError, HandlerNotFound
from consumer.handlers import resolve
from tests.support import CONFIG_SECRET as SECRET
from tests.support import config_refused as refused

pytestmark = pytest.mark.usefixtures("config_env")


def test_a_file_nested_thousands_of_levels_deep_is_refused_without_recursing(
    tmp_path: Path,
) -> None:
    assert "nested deeper than 32 levels at line 1" in refused(tmp_path, "a: " + "[" * 5000)


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    began = time.monotonic()
    message = refused(tmp_path, "x: [" + "1, " * 10_000_000 + "1]\n")

    assert "bytes; at most 1048576" in message
    assert time.monotonic() - began < 2


def test_a_duplicate_top_level_key_is_refused_naming_it_and_its_line(tmp_path: Path) -> None:
    text = "kafka:\n  topic: a\nlog:\n  level: INFO\nkafka:\n  group_id: b\n"

    assert "duplicate key 'kafka' at line 5" in refused(tmp_path, text)


def test_a_duplicate_nested_key_is_refused(tmp_path: Path) -> None:
    text = f"vod:\n  secret_key: {SECRET}\n  secret_key: other\n"

    assert "duplicate key 'secret_key' at line 3" in refused(tmp_path, text)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {topic: a}\n", encoding="utf-8")  # anchors alone are fine
    text = "kafka:\n  <<: {topic: a, group_id: g}\n  topic: b\n"
    path.write_text(text, encoding="utf-8")

    assert load_settings(path).kafka.topic == "b"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("consumer:\n  max_in_flight: true\n", "consumer.max_in_flight: must be a number"),
        ("consumer:\n  shutdown_timeout: .inf\n", "consumer.shutdown_timeout"),
        ("vod:\n  quota_window: .inf\n", "vod.quota_window"),
        ("covers:\n  snapshot_retry_after: .inf\n", "covers.snapshot_retry_after"),
        ("dead_letter:\n  guard_threshold: true\n", "dead_letter.guard_threshold"),
    ],
)
def test_booleans_and_infinities_are_not_numbers_here(tmp_path: Path, text: str, key: str) -> None:
    assert key in refused(tmp_path, text)


def test_an_empty_route_list_is_refused(tmp_path: Path) -> None:
    assert "routes: no route: every event would be skipped" in refused(tmp_path, "routes: []\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kafka: {topic: t}\ndead_letter: {topic: t}\n",
            "dead_letter.topic is the same topic as kafka.topic",
        ),
        (
            "kafka: {topic: t}\nretry: {tiers: [{delay: 60, topic: t}]}\n",
            "retry.tiers.0.topic is the same topic as kafka.topic",
        ),
        (
            "retry: {tiers: [{delay: 60}]}\ndead_letter: {topic: vod-cover-events.retry.1m}\n",
            "retry.tiers.0.topic is the same topic as dead_letter.topic",
        ),
        (
            "retry: {tiers: [{delay: 60, topic: r}, {delay: 600, topic: r}]}\n",
            "retry.tiers: Value error, two tiers name the same topic",
        ),
        (
            "retry: {tiers: [{delay: 600}, {delay: 60}]}\n",
            "tier delays must increase",
        ),
    ],
)
def test_side_topics_that_would_loop_or_collide_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    assert message.replace("Value error, ", "") in refused(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kafka: {topic: 'vod covers/events'}\n", "kafka.topic: not a Kafka topic name"),
        ("kafka: {topic: ..}\n", "kafka.topic: not a Kafka topic name"),
        ("dead_letter: {topic: 'dead letters'}\n", "dead_letter.topic: not a Kafka topic name"),
        ("retry: {tiers: [{delay: 60, topic: 'r:1'}]}\n", "retry.tiers.0.topic: not a Kafka"),
        # Fine alone, but the names made from it pass Kafka's 249 characters.
        (f"kafka: {{topic: {'t' * 245}}}\n", "retry.tiers.0.topic: not a Kafka topic name"),
        (
            f"kafka: {{topic: {'t' * 243}}}\nretry: {{tiers: []}}\n",
            "dead_letter.topic (its replays topic): not a Kafka topic name",
        ),
    ],
)
def test_a_topic_name_kafka_would_refuse_is_refused_at_start(
    tmp_path: Path, text: str, message: str
) -> None:
    # The daemon subscribed to it and waited, never started, never said why.
    assert message in refused(tmp_path, text)


@pytest.mark.parametrize("endpoint", ["vod.example.com", "ftp://vod.example.com", "https://"])
def test_a_vod_endpoint_must_be_an_http_url(tmp_path: Path, endpoint: str) -> None:
    text = f"vod: {{endpoint: '{endpoint}', project_id: p, access_key: a, secret_key: {SECRET}}}\n"

    assert "vod.endpoint: must be an http:// or https:// URL" in refused(tmp_path, text)


def test_a_heartbeat_not_below_the_session_timeout_is_refused(tmp_path: Path) -> None:
    text = "kafka: {session_timeout_ms: 6000, heartbeat_interval_ms: 6000}\n"

    assert "heartbeat_interval_ms must be below session_timeout_ms" in refused(tmp_path, text)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "COVER_CONSUMER__KAKFA__TOPIC",
            "there is no setting kakfa.topic; did you mean kafka.topic?",
        ),
        (
            "cover_consumer__kafka__topik",
            "there is no setting kafka.topik; did you mean kafka.topic?",
        ),
        (
            "COVER_CONSUMER_KAFKA__TOPIC",
            "take the prefix COVER_CONSUMER__ (two underscores), e.g. COVER_CONSUMER__KAFKA__TOPIC",
        ),
    ],
)
def test_an_environment_variable_that_sets_nothing_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, message: str
) -> None:
    monkeypatch.setenv(name, SECRET)

    with pytest.raises(ConfigError) as info:
        load_settings(None)

    assert message in str(info.value)
    assert f"environment variable {name}" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_whole_section_as_json_in_the_environment_is_a_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COVER_CONSUMER__RETRY__TIERS", '[{"delay": 5}]')

    assert load_settings(None).retry.tiers[0].delay == 5


def test_a_misspelt_secret_file_is_refused_and_other_keys_of_the_secret_ignored(
    tmp_path: Path,
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "keda-tls").write_text("enable")  # KEDA's key in the same Secret: not ours
    (secrets / "..data").mkdir()  # Kubernetes' own
    (secrets / "kafka__sasl_pasword").write_text(SECRET)

    with pytest.raises(ConfigError) as info:
        load_settings(None)

    assert "kafka__sasl_pasword: there is no setting kafka.sasl_pasword" in str(info.value)
    assert "did you mean kafka.sasl_password?" in str(info.value)


@pytest.mark.parametrize(
    ("match", "message"),
    [
        (
            {"status": "FAILD"},
            "routes.0.match.status: 'FAILD' never matches (known: SUCCEED, FAILED); "
            "did you mean FAILED?",
        ),
        ({"event_type": "coverComplet"}, "routes.0.match.event_type: 'coverComplet' never"),
        ({"cover_type": "HEAD_FRAME"}, "did you mean HEAD_FRAME_COVER?"),
    ],
)
def test_a_route_that_would_never_match_is_refused_with_the_closest_value(
    tmp_path: Path, match: dict[str, str], message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"routes": [{"match": match, "handlers": ["log"]}]}))

    with pytest.raises(ConfigError) as info:
        routes_for(load_settings(path))

    assert message in str(info.value)


def test_known_values_match_whatever_their_case(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    match = {"event_type": "CoverComplete", "status": "failed", "cover_type": "head_frame_cover"}
    path.write_text(yaml.safe_dump({"routes": [{"match": match, "handlers": ["log"]}]}))

    assert len(routes_for(load_settings(path)).routes) == 1


def not_async(event: object, ctx: object) -> object:
    return None


class AsyncCallable:
    async def __call__(self, event: object, ctx: object) -> object:
        return None


ASYNC_INSTANCE = AsyncCallable()


def test_a_handler_that_is_not_async_is_refused() -> None:
    with pytest.raises(HandlerNotFound) as info:
        resolve("tests.unit.test_config_refused:not_async")

    assert "not async (define it with 'async def')" in str(info.value)
    resolved: object = resolve("tests.unit.test_config_refused:ASYNC_INSTANCE")
    assert resolved is ASYNC_INSTANCE


@pytest.mark.parametrize("source", ["file", "env", "secret"])
def test_an_invalid_value_names_the_source_that_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("consumer:\n  max_in_flight: 0\n" if source == "file" else "")
    if source == "env":
        monkeypatch.setenv("COVER_CONSUMER__CONSUMER__MAX_IN_FLIGHT", "0")
    if source == "secret":
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "consumer__max_in_flight").write_text("0")

    with pytest.raises(ConfigError) as info:
        load_settings(path)

    expected = {
        "file": "(from the file)",
        "env": "(from environment variable COVER_CONSUMER__CONSUMER__MAX_IN_FLIGHT)",
        "secret": f"(from secret file {tmp_path / 'secrets' / 'consumer__max_in_flight'})",
    }[source]
    assert f"consumer.max_in_flight: Input should be greater than or equal to 1 {expected}" in str(
        info.value
    )
