"""``topics ensure`` against a fake admin client: what it alters, keeps, reports and fails on.

The broker tests (tests/broker/test_topics_ensure.py) run it on Tansu, which has no
AlterConfigs; the altering path is pinned here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from consumer.config import KafkaSettings, Settings
from consumer.redelivery import topics
from consumer.redelivery.topics import EnsureReport, ensure_topics, owned_configs

MAIN = "covers"
DLQ = f"{MAIN}.dlq"
REPLAYS = f"{DLQ}.replays"
TIERS = [f"{MAIN}.retry.1m", f"{MAIN}.retry.10m", f"{MAIN}.retry.1h"]
FOURTEEN_DAYS_MS = "1209600000"


@dataclass
class Answer:
    body: dict[str, Any]

    def to_object(self) -> dict[str, Any]:
        return self.body


@dataclass
class FakeAdmin:
    """Topics with a replication factor and config entries (name -> (value, source))."""

    replication: dict[str, int]
    configs: dict[str, dict[str, tuple[str | None, int]]] = field(default_factory=dict)
    create_errors: dict[str, int] = field(default_factory=dict)
    alter_error: int = 0
    altered: dict[str, dict[str, str]] = field(default_factory=dict)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def describe_topics(self) -> list[dict[str, Any]]:
        return [
            {"topic": name, "error_code": 0, "partitions": [{"replicas": list(range(rf))}] * 6}
            for name, rf in self.replication.items()
        ]

    async def create_topics(self, new: list[Any]) -> Answer:
        errors = []
        for topic in new:
            code = self.create_errors.get(topic.name, 0)
            errors.append({"topic": topic.name, "error_code": code, "error_message": "no"})
        return Answer({"topic_errors": errors})

    async def describe_configs(self, resources: list[Any]) -> list[Answer]:
        found = [
            {
                "error_code": 0,
                "resource_name": r.name,
                "config_entries": [
                    {"config_names": k, "config_value": v, "config_source": source}
                    for k, (v, source) in self.configs.get(r.name, {}).items()
                ],
            }
            for r in resources
        ]
        return [Answer({"resources": found})]

    async def alter_configs(self, resources: list[Any]) -> list[Answer]:
        self.altered.update({r.name: dict(r.configs) for r in resources})
        answers = [
            {"resource_name": r.name, "error_code": self.alter_error, "error_message": "ACL"}
            for r in resources
        ]
        return [Answer({"resources": answers})]


def aligned(rf: int = 3) -> dict[str, dict[str, tuple[str | None, int]]]:
    """Every side topic as ensure would leave it (source 1: a per-topic override)."""
    configs: dict[str, dict[str, tuple[str | None, int]]] = {
        name: {"min.insync.replicas": (str(min(2, rf)), 1)} for name in [*TIERS, DLQ, REPLAYS]
    }
    configs[DLQ]["retention.ms"] = (FOURTEEN_DAYS_MS, 1)
    configs[REPLAYS]["cleanup.policy"] = ("compact", 1)
    return configs


@pytest.fixture
def settings() -> Settings:
    return Settings(kafka=KafkaSettings(topic=MAIN))


async def run(
    admin: FakeAdmin, settings: Settings, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> tuple[EnsureReport, str]:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", lambda **_: admin)
    out = io.StringIO()
    report = await ensure_topics(settings, out, **kwargs)
    return report, out.getvalue()


def everything(rf: int = 3) -> dict[str, int]:
    return dict.fromkeys([MAIN, *TIERS, DLQ, REPLAYS], rf)


async def test_an_owned_config_that_differs_is_set_keeping_the_topics_other_overrides(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = aligned()
    configs[DLQ]["retention.ms"] = ("604800000", 1)
    configs[DLQ]["segment.ms"] = ("3600000", 1)  # someone else's override: kept
    configs[DLQ]["max.message.bytes"] = ("1048588", 5)  # a default: not sent back
    admin = FakeAdmin(everything(), configs)

    report, out = await run(admin, settings, monkeypatch)

    assert admin.altered == {
        DLQ: {
            "min.insync.replicas": "2",
            "retention.ms": FOURTEEN_DAYS_MS,
            "segment.ms": "3600000",
        }
    }
    assert f"set      {DLQ}  retention.ms={FOURTEEN_DAYS_MS} (was 604800000)" in out
    assert report.altered == [(DLQ, "retention.ms")]


async def test_topics_already_as_owned_are_not_altered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = FakeAdmin(everything(), aligned())

    report, _ = await run(admin, settings, monkeypatch)

    assert admin.altered == {}
    assert report.ok


async def test_the_main_topic_is_never_altered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = FakeAdmin(everything(), aligned())  # the main topic has no owned config set

    await run(admin, settings, monkeypatch)

    assert MAIN not in admin.altered


async def test_a_change_the_broker_refuses_is_reported_and_the_run_succeeds(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = aligned()
    del configs[REPLAYS]["cleanup.policy"]
    admin = FakeAdmin(everything(), configs, alter_error=29)

    report, out = await run(admin, settings, monkeypatch)

    assert f"not set  {REPLAYS}  cleanup.policy=compact: refused: ACL" in out
    assert report.not_set == [(REPLAYS, "cleanup.policy")]
    assert report.ok


async def test_a_topic_with_an_override_it_cannot_read_back_is_not_altered(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = aligned()
    configs[DLQ]["retention.ms"] = ("604800000", 1)
    configs[DLQ]["some.secret"] = (None, 1)  # a sensitive value the broker does not show
    admin = FakeAdmin(everything(), configs)

    report, _ = await run(admin, settings, monkeypatch)

    assert admin.altered == {}
    assert report.not_set == [(DLQ, "retention.ms")]


async def test_a_topic_that_cannot_be_created_fails_the_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = FakeAdmin({MAIN: 3}, create_errors={DLQ: 41})

    report, out = await run(admin, settings, monkeypatch)

    assert f"failed   {DLQ}: no" in out
    assert not report.ok


async def test_a_topic_created_meanwhile_by_someone_else_is_not_a_failure(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = FakeAdmin({MAIN: 3}, create_errors={DLQ: 36})

    report, _ = await run(admin, settings, monkeypatch)

    assert report.ok


async def test_too_few_main_partitions_for_keda_fails_the_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = FakeAdmin(everything(), aligned())  # 6 partitions each

    short, _ = await run(admin, settings, monkeypatch, keda_max_replicas=7)
    enough, _ = await run(admin, settings, monkeypatch, keda_max_replicas=6)

    assert (short.ok, enough.ok) == (False, True)


@pytest.mark.parametrize(("replication", "expected"), [(1, "1"), (2, "2"), (3, "2")])
def test_min_insync_replicas_is_capped_at_the_replication_factor(
    settings: Settings, replication: int, expected: str
) -> None:
    assert owned_configs(settings, TIERS[0], replication)["min.insync.replicas"] == expected


def test_only_the_dead_letters_get_a_retention_and_only_the_markers_compaction(
    settings: Settings,
) -> None:
    assert set(owned_configs(settings, DLQ, 3)) == {"min.insync.replicas", "retention.ms"}
    assert set(owned_configs(settings, REPLAYS, 3)) == {"min.insync.replicas", "cleanup.policy"}
    assert set(owned_configs(settings, TIERS[0], 3)) == {"min.insync.replicas"}
