"""Wiring the parts: Kafka source -> engine -> pipeline (routes, handlers) -> side topics,
with VOD behind its circuit and quotas when the config names an endpoint."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer
from structlog.typing import FilteringBoundLogger

from consumer.config import Settings
from consumer.engine import Engine
from consumer.guard import DeadLetterGuard
from consumer.handlers import Clients
from consumer.headers import due_at
from consumer.kafka import client_options, consumer_options
from consumer.logs import flush
from consumer.processing import Pipeline
from consumer.routing import Router
from consumer.sidetopics import SideTopics
from consumer.sink import KafkaSink
from consumer.source import KafkaSource, TopicPartition
from consumer.topology import Topology
from consumer.vod.circuit import Circuit
from consumer.vod.client import VodClient
from consumer.vod.gateway import GuardedVod
from consumer.vod.quota import QuotaWindow

__all__ = ["Parts", "build"]

# Any asset id will do: an answer other than an authentication error proves the key.
PROBE_ASSET = "0" * 32


@dataclass(frozen=True, slots=True)
class Parts:
    engine: Engine
    pipeline: Pipeline
    source: KafkaSource
    sink: KafkaSink
    guard: DeadLetterGuard
    vod: GuardedVod | None
    main_topic: str

    async def start(self) -> None:
        """Connect the producer, then join the group (both may wait on an absent broker)."""
        await self.sink.start()
        await self.source.start(self._revoked, self._assigned)

    def held(self) -> str | None:
        """Why consumption is held, if it is: the daemon is then not ready."""
        if self.guard.tripped:
            return "dead-letter guard tripped"
        if self.vod is not None and self.vod.circuit.is_open:
            return f"VOD circuit open: {self.vod.circuit.reason}"
        return None

    async def _assigned(self, partitions: Collection[TopicPartition]) -> None:
        await self.engine.on_assigned(partitions)
        self._share_quota()

    async def _revoked(self, partitions: Collection[TopicPartition]) -> None:
        await self.engine.on_revoked(partitions)
        self._share_quota()

    def _share_quota(self) -> None:
        if self.vod is not None:
            owned, total = self.source.share_of(self.main_topic)
            self.vod.set_share(owned / total if total else 0.0)


def build(
    settings: Settings, router: Router, http: aiohttp.ClientSession, log: FilteringBoundLogger
) -> Parts:
    topology = Topology.from_settings(settings)
    tier_topics = topology.tier_topics()
    sink = KafkaSink(client_options(settings.kafka), log)
    engine: Engine | None = None

    def wake() -> None:
        if engine is not None:
            engine.wake()

    def on_trip(why: str) -> None:
        log.critical(
            "dead_letter_guard_tripped",
            reason=why,
            action="consumption paused; find the cause, then restart",
        )
        wake()

    dl = settings.dead_letter
    guard = DeadLetterGuard(dl.guard_window, dl.guard_threshold, dl.guard_min_records, on_trip)
    vod = _vod(settings, http, log, wake)
    side = SideTopics(sink, topology, guard, settings.kafka.group_id)
    pipeline = Pipeline(
        router,
        Clients(http, vod, settings.covers),
        log,
        side,
        settings.retry,
        settings.consumer.handler_timeout,
        until_healthy=vod.circuit.wait_closed if vod is not None else None,
    )
    source = KafkaSource(AIOKafkaConsumer(**consumer_options(settings.kafka)), topology.consumed)
    engine = Engine(
        source,
        pipeline.process,
        settings.consumer,
        log,
        not_before=lambda r: due_at(r.headers) if r.topic in tier_topics else None,
        halted=lambda: guard.tripped or (vod is not None and vod.circuit.is_open),
        before_commit=flush,
    )
    return Parts(engine, pipeline, source, sink, guard, vod, topology.main)


def _vod(
    settings: Settings,
    http: aiohttp.ClientSession,
    log: FilteringBoundLogger,
    wake: Callable[[], None],
) -> GuardedVod | None:
    vod = settings.vod
    if vod.endpoint is None or vod.project_id is None:
        return None
    if vod.access_key is not None and vod.secret_key is not None:
        auth: dict[str, Any] = {
            "access_key": vod.access_key.get_secret_value(),
            "secret_key": vod.secret_key,
        }
    else:
        auth = {"auth_token": vod.auth_token}
    client = VodClient(
        http, endpoint=vod.endpoint, project_id=vod.project_id, timeout=vod.timeout, **auth
    )
    circuit = Circuit(
        lambda: client.show_asset_detail(PROBE_ASSET, ("base_info",)),
        vod.circuit_probe_interval,
        log,
        on_change=wake,
    )
    return GuardedVod(
        client,
        circuit,
        QuotaWindow(vod.write_quota_per_minute, window=vod.quota_window),
        QuotaWindow(vod.query_quota_per_minute, window=vod.quota_window),
        vod.max_concurrent_calls,
    )
