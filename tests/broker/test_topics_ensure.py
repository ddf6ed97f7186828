"""``cover-consumer topics ensure`` on a real broker: the configs it owns, what it cannot set,
and the main topic's partitions against the replicas KEDA may run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from consumer.devtools.broker import create_topic
from tests.support import REPO, daemon_config

# One broker: replication factor 1, so min.insync.replicas is capped from 2 to 1.
TOPICS = {"topics": {"partitions": 2, "replication_factor": 1, "dead_letter_retention": 86400}}


def ensure(config: Path, *args: str) -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "topics", "ensure", "--config", str(config), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # aiokafka's own log lines (JSON) share stdout: keep the tool's plain lines.
    lines = [line for line in result.stdout.splitlines() if not line.startswith("{")]
    return result.returncode, lines


async def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    try:
        responses = await admin.describe_configs([resource])
    finally:
        await admin.close()
    return {
        entry["config_names"]: entry["config_value"]
        for response in responses
        for resource in response.to_object()["resources"]
        for entry in resource["config_entries"]
    }


def test_created_side_topics_carry_the_configs_it_owns(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=TOPICS)

    code, _ = ensure(config)
    dlq = asyncio.run(topic_configs(bootstrap, f"{name}.dlq"))
    replays = asyncio.run(topic_configs(bootstrap, f"{name}.dlq.replays"))
    tier = asyncio.run(topic_configs(bootstrap, f"{name}.retry.1m"))

    assert code == 0
    assert dlq["retention.ms"] == "86400000"
    assert replays["cleanup.policy"] == "compact"
    assert {dlq["min.insync.replicas"], tier["min.insync.replicas"]} == {"1"}


def test_an_owned_config_it_cannot_set_is_reported_and_the_run_succeeds(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    # Made before, without configs: ensure must change it (Tansu has no AlterConfigs, so
    # there it reports `not set`; a Kafka broker takes the change and it reports `set`).
    asyncio.run(create_topic(bootstrap, f"{name}.dlq", 1))
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=TOPICS)

    code, lines = ensure(config)

    assert code == 0
    dlq_lines = [line for line in lines if f" {name}.dlq  retention.ms=86400000" in line]
    assert len(dlq_lines) == 1
    assert dlq_lines[0].startswith(("set      ", "not set  "))


def test_an_aligned_topic_is_left_alone_on_the_next_run(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=TOPICS)
    ensure(config)

    code, lines = ensure(config)

    assert code == 0
    assert [line for line in lines if not line.startswith("exists ")] == []


def test_a_main_topic_with_fewer_partitions_than_keda_may_run_fails_the_run(
    bootstrap: str, name: str, tmp_path: Path
) -> None:
    asyncio.run(create_topic(bootstrap, name, 2))
    config = daemon_config(tmp_path, bootstrap, name, name, "log", extra=TOPICS)

    short, short_lines = ensure(config, "--keda-max-replicas", "3")
    enough, enough_lines = ensure(config, "--keda-max-replicas", "2")

    assert short == 1
    assert f"too few partitions: {name} has 2, KEDA may run 3 replicas" in short_lines[-1]
    assert enough == 0
    assert not [line for line in enough_lines if "too few" in line]
