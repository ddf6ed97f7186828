"""``cover-consumer topics ensure``: the topics exist, with the topic configs the daemon owns.

Owned configs, set on every topic it creates and kept on the side topics (retry tiers,
dead letters, replay markers) on every run:

- ``min.insync.replicas``: ``topics.min_insync_replicas``, capped at the topic's
  replication factor (a higher value would refuse every ``acks=all`` write);
- the dead-letter topic's ``retention.ms``: ``topics.dead_letter_retention``;
- the replay-marker topic's ``cleanup.policy=compact``: a marker deleted by retention
  would let ``dlq replay`` replay its dead letter a second time.

The main topic belongs to its producer (the VOD bridge): created with these configs when
missing, never altered. Its partition count is checked against the most replicas KEDA may
run, when told that number: replicas beyond the partitions get nothing to consume.

aiokafka's only config call, AlterConfigs, replaces a topic's whole set of overrides, so
the current overrides are read first and sent back with ours. A broker that refuses (an
ACL, or no AlterConfigs at all, like the Tansu test broker) gets a ``not set`` line; that
alone does not fail the run. A topic that cannot be created does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import IncompatibleBrokerVersion, KafkaError

from consumer.config import Settings
from consumer.kafka.options import client_options
from consumer.redelivery.topology import Topology

__all__ = ["EnsureReport", "ensure_topics", "owned_configs"]

_TOPIC_ALREADY_EXISTS = 36
# DescribeConfigs v1+: where a value comes from; 1 is a per-topic override.
_TOPIC_OVERRIDE = 1


@dataclass(slots=True)
class EnsureReport:
    created: list[str] = field(default_factory=list)
    #: Topics that could not be created, with the broker's reason.
    failed: dict[str, str] = field(default_factory=dict)
    #: (topic, config) pairs changed on existing topics, and those the broker refused.
    altered: list[tuple[str, str]] = field(default_factory=list)
    not_set: list[tuple[str, str]] = field(default_factory=list)
    too_few_partitions: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.too_few_partitions


def owned_configs(settings: Settings, topic: str, replication_factor: int) -> dict[str, str]:
    """The topic configs ``topics ensure`` sets on ``topic``."""
    topology = Topology.from_settings(settings)
    spec = settings.topics
    configs = {"min.insync.replicas": str(min(spec.min_insync_replicas, replication_factor))}
    if topic == topology.dead_letter:
        configs["retention.ms"] = str(round(spec.dead_letter_retention * 1000))
    if topic == topology.replays:
        configs["cleanup.policy"] = "compact"
    return configs


async def ensure_topics(
    settings: Settings, out: TextIO, keda_max_replicas: int | None = None
) -> EnsureReport:
    """Create the missing topics, align the side topics' owned configs, check partitions."""
    topology = Topology.from_settings(settings)
    wanted = [*topology.consumed, topology.dead_letter, topology.replays]
    report = EnsureReport()
    admin = AIOKafkaAdminClient(**client_options(settings.kafka))
    await admin.start()
    try:
        # Metadata of every topic (asking for names could auto-create them on some brokers).
        existing = {t["topic"]: t for t in await admin.describe_topics() if t["error_code"] == 0}
        await _create(admin, settings, [n for n in wanted if n not in existing], report)
        for name in wanted:
            if name in report.failed:
                out.write(f"failed   {name}: {report.failed[name]}\n")
            else:
                out.write(f"{'created' if name in report.created else 'exists '}  {name}\n")
        side = [n for n in wanted if n in existing and n != topology.main]
        await _align(admin, settings, {n: _replication(existing[n]) for n in side}, report, out)
    finally:
        await admin.close()
    if keda_max_replicas is not None:
        main = existing.get(topology.main)
        partitions = len(main["partitions"]) if main else settings.topics.partitions
        if partitions < keda_max_replicas:
            report.too_few_partitions = True
            out.write(
                f"too few partitions: {topology.main} has {partitions}, KEDA may run "
                f"{keda_max_replicas} replicas (those beyond {partitions} get nothing)\n"
            )
    return report


async def _create(admin: Any, settings: Settings, missing: list[str], report: EnsureReport) -> None:
    if not missing:
        return
    spec = settings.topics
    response = await admin.create_topics(
        [
            NewTopic(
                name,
                spec.partitions,
                spec.replication_factor,
                topic_configs=owned_configs(settings, name, spec.replication_factor),
            )
            for name in missing
        ]
    )
    for entry in response.to_object()["topic_errors"]:
        code = entry["error_code"]
        if code == 0:
            report.created.append(entry["topic"])
        elif code != _TOPIC_ALREADY_EXISTS:  # created meanwhile by someone else: fine
            report.failed[entry["topic"]] = entry.get("error_message") or f"error {code}"


async def _align(
    admin: Any,
    settings: Settings,
    replication: dict[str, int],
    report: EnsureReport,
    out: TextIO,
) -> None:
    """Set the owned configs that differ on existing side topics, keeping other overrides."""
    if not replication:
        return
    wanted = {name: owned_configs(settings, name, rf) for name, rf in replication.items()}
    try:
        current = await _describe(admin, list(wanted))
    except KafkaError as exc:
        _refused(report, out, wanted, f"cannot read the topic's configs ({type(exc).__name__})")
        return
    diffs: dict[str, dict[str, str]] = {}
    for name, configs in wanted.items():
        values, overrides = current.get(name, ({}, {}))
        diff = {k: v for k, v in configs.items() if values.get(k) != v}
        if not diff:
            continue
        if None in overrides.values():
            # AlterConfigs would drop an override whose value the broker does not show.
            _refused(report, out, {name: diff}, "it has overrides that cannot be read back")
            continue
        diffs[name] = diff
        overrides.update(diff)
    if not diffs:
        return
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, current.get(name, ({}, {}))[1])
        for name in diffs
    ]
    try:
        responses = await admin.alter_configs(resources)
    except IncompatibleBrokerVersion:
        _refused(report, out, diffs, "the broker does not support AlterConfigs")
        return
    except KafkaError as exc:
        _refused(report, out, diffs, f"the broker refused ({type(exc).__name__})")
        return
    for response in responses:
        for entry in response.to_object()["resources"]:
            name = entry["resource_name"]
            if entry["error_code"] != 0:
                _refused(report, out, {name: diffs[name]}, f"refused: {entry['error_message']}")
                continue
            for key, value in diffs[name].items():
                was = current.get(name, ({}, {}))[0].get(key, "unset")
                report.altered.append((name, key))
                out.write(f"set      {name}  {key}={value} (was {was})\n")


async def _describe(
    admin: Any, names: list[str]
) -> dict[str, tuple[dict[str, str], dict[str, str | None]]]:
    """Each topic's config values, and those of them that are per-topic overrides."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    found: dict[str, tuple[dict[str, str], dict[str, str | None]]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0:
                continue
            values: dict[str, str] = {}
            overrides: dict[str, str | None] = {}
            for entry in resource["config_entries"]:
                values[entry["config_names"]] = entry["config_value"]
                source = entry.get("config_source")
                if source == _TOPIC_OVERRIDE or (source is None and not entry["is_default"]):
                    overrides[entry["config_names"]] = entry["config_value"]
            found[resource["resource_name"]] = (values, overrides)
    return found


def _refused(
    report: EnsureReport, out: TextIO, configs: dict[str, dict[str, str]], why: str
) -> None:
    for name, owned in configs.items():
        for key, value in owned.items():
            report.not_set.append((name, key))
            out.write(f"not set  {name}  {key}={value}: {why}\n")


def _replication(metadata: dict[str, Any]) -> int:
    partitions = metadata["partitions"]
    return min((len(p["replicas"]) for p in partitions), default=1)
