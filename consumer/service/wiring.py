"""Wiring the parts: Kafka source -> engine -> pipeline (routes, handlers) -> side topics,
with VOD behind its circuit and quotas when the config names an endpoint. One ``Hold``
is shared by all: the guard and the circuit set it, flow control and readiness read it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass

import aiohttp
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from structlog.typing import FilteringBoundLogger

from consumer import metrics
from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.config import Settings, secret_file
from consumer.dispatch.intake import describe, prepare
from consumer.dispatch.pipeline import Pipeline
from consumer.dispatch.routing import Router
from consumer.engine.loop import Engine
from consumer.handlers import Clients
from consumer.hold import Hold, Reason
from consumer.kafka.group import GroupOffsets
from consumer.kafka.options import client_options, consumer_options
from consumer.kafka.sink import KafkaSink
from consumer.kafka.source import KafkaSource, Record, TopicPartition
from consumer.logs import flush
from consumer.redelivery.guard import DeadLetterGuard
from consumer.redelivery.headers import due_at
from consumer.redelivery.sidetopics import SideTopics
from consumer.redelivery.topology import Topology
from consumer.tracing import Tracer
from consumer.vod.circuit import Circuit
from consumer.vod.client import VodClient, vod_session
from consumer.vod.credentials import (
    CredentialField,
    CredentialSource,
    SecretFileCredentials,
    StaticCredentials,
)
from consumer.vod.gateway import GuardedVod
from consumer.vod.quota import QuotaWindow, WorkView
from consumer.vod.signing import Credentials

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
    hold: Hold
    main_topic: str
    #: VOD's own connection pool (see ``vod_session``), closed with the daemon.
    vod_http: aiohttp.ClientSession | None = None
    #: The group's work as this replica sees it, which its VOD quota shares follow.
    work: WorkView | None = None
    group: GroupOffsets | None = None

    async def start(self) -> None:
        """Connect the producer, then join the group (both may wait on an absent broker)."""
        await self.sink.start()
        await self.source.start(self._revoked, self._assigned)

    async def close_vod(self) -> None:
        if self.vod_http is not None:
            await self.vod_http.close()
        if self.group is not None:
            await self.group.close()

    async def _assigned(self, partitions: Collection[TopicPartition]) -> None:
        await self.engine.on_assigned(partitions)
        self.share_quota()

    async def _revoked(self, partitions: Collection[TopicPartition]) -> None:
        await self.engine.on_revoked(partitions)
        self.share_quota(leaving=partitions)  # before another member can own them

    def share_quota(self, leaving: Collection[TopicPartition] = ()) -> None:
        """Ask this replica's share of the VOD quotas from what it owns and sees now."""
        if self.vod is not None and self.work is not None:
            owned = self.source.owned() - set(leaving)
            busy = self.source.busy() & owned
            self.vod.set_share(self.work.ask(owned, busy, self.source.partitions(self.main_topic)))

    async def follow_work(self, log: FilteringBoundLogger, clock: Clock = SYSTEM_CLOCK) -> None:
        """Read the group's offsets from Kafka every period and ask the quota shares again;
        until cancelled. A reading that fails or is late counts as none (see ``WorkView``)."""
        if self.work is None or self.group is None:
            return
        period = self.work.period
        while True:
            began = clock.monotonic()
            try:
                offsets = await asyncio.wait_for(self.group.read(), period / 2)
            except Exception as exc:  # whatever failed, this period has no reading
                level = (
                    log.debug
                    if isinstance(exc, KafkaError | OSError | TimeoutError)
                    else log.warning
                )
                level("group_offsets_unknown", error=type(exc).__name__, reason=str(exc))
            else:
                self.work.read(began, offsets)
            self.share_quota()
            await clock.sleep(began + period - clock.monotonic())


def build(
    settings: Settings,
    router: Router,
    http: aiohttp.ClientSession,
    log: FilteringBoundLogger,
    clock: Clock = SYSTEM_CLOCK,
) -> Parts:
    topology = Topology.from_settings(settings)
    # Only a tier's records have due times: the engine asks per topic (None: due at once).
    due_times = {tier.topic: _due_time(tier.delay) for tier in topology.tiers}
    hold = Hold()
    _export(hold)
    hold.on_change(lambda: _export(hold))
    sink = KafkaSink(client_options(settings.kafka), log)

    def on_trip(why: str) -> None:
        log.critical(
            "dead_letter_guard_tripped",
            reason=why,
            action="consumption paused; find the cause, then restart",
        )

    dl = settings.dead_letter
    guard = DeadLetterGuard(
        dl.guard_window, dl.guard_threshold, dl.guard_min_records, on_trip=on_trip, hold=hold
    )
    vod_http = vod_session(settings.vod.max_concurrent_calls) if settings.vod.endpoint else None
    tracer = _tracer(settings, log)
    vod = _vod(settings, vod_http, log, hold, clock, tracer) if vod_http is not None else None
    side = SideTopics(sink, topology, guard, settings.kafka.group_id, clock=clock)
    pipeline = Pipeline(
        router,
        Clients(http, vod, settings.covers),
        log,
        side,
        settings.retry,
        settings.consumer.handler_timeout,
        hold=hold,
        clock=clock,
        tracer=tracer,
    )

    source = KafkaSource(AIOKafkaConsumer(**consumer_options(settings.kafka)), topology.consumed)
    engine = Engine(
        source,
        pipeline.process,
        settings.consumer,
        log,
        prepare=prepare,
        due=due_times.get,
        describe=describe,
        hold=hold,
        clock=clock,
        before_commit=flush,
        # As long as the client waits for any answer, but never so long that /livez, which
        # the loop's steps keep beating, would fail while a commit waits.
        commit_timeout=min(
            settings.kafka.request_timeout_ms / 1000, settings.http.liveness_timeout / 2
        ),
    )
    work, group = None, None
    if vod is not None:
        window = settings.vod.quota_window
        work = WorkView(topology.main, window, reading_period(window), clock=clock)
        kafka = settings.kafka
        group = GroupOffsets(client_options(kafka), kafka.group_id, topology.consumed)
    return Parts(
        engine, pipeline, source, sink, guard, vod, hold, topology.main, vod_http, work, group
    )


def _due_time(delay: float) -> Callable[[Record], float | None]:
    def due_time(record: Record) -> float | None:
        # Written at its timestamp, due a tier's delay later at most, whatever it says.
        return due_at(record.headers, latest=record.timestamp / 1000 + delay)

    return due_time


def reading_period(window: float) -> float:
    """Seconds between two readings of the group's offsets: a twentieth of the quota
    window, at most a second (VOD's minute: a request of each kind a second)."""
    return min(window / 20, 1.0)


def _vod(
    settings: Settings,
    http: aiohttp.ClientSession,
    log: FilteringBoundLogger,
    hold: Hold,
    clock: Clock,
    tracer: Tracer,
) -> GuardedVod | None:
    vod = settings.vod
    credentials = _credentials(settings, log)
    if vod.endpoint is None or vod.project_id is None or credentials is None:
        return None
    client = VodClient(
        http,
        endpoint=vod.endpoint,
        project_id=vod.project_id,
        credentials=credentials,
        timeout=vod.timeout,
        clock=clock,
    )
    circuit = Circuit(
        lambda: client.show_asset_detail(PROBE_ASSET, ("base_info",)),
        vod.circuit_probe_interval,
        log,
        hold=hold,
        clock=clock,
    )
    return GuardedVod(
        client,
        circuit,
        QuotaWindow(vod.write_quota_per_minute, clock=clock, window=vod.quota_window),
        QuotaWindow(vod.query_quota_per_minute, clock=clock, window=vod.quota_window),
        vod.max_concurrent_calls,
        clock=clock,
        tracer=tracer,
    )


def _tracer(settings: Settings, log: FilteringBoundLogger) -> Tracer:
    tracer = Tracer(settings.tracing.enabled)
    if not settings.tracing.enabled:
        return tracer
    if not tracer.active:
        # Asked for and impossible: said once, and the daemon runs on without spans (the
        # outcome lines still carry each record's trace ids).
        log.warning(
            "tracing_unavailable",
            reason="tracing.enabled is set but opentelemetry-sdk is not installed",
            action="pip install 'cover-consumer[tracing]', or set tracing.enabled: false",
        )
    elif tracer.destination.startswith("nowhere"):
        log.warning("tracing_not_exported", spans=tracer.destination)
    else:
        log.info("tracing_enabled", spans=tracer.destination)
    return tracer


def _export(hold: Hold) -> None:
    """The two holds an alert pages for, as gauges (readiness shows every reason)."""
    metrics.VOD_CIRCUIT_OPEN.set(Reason.CIRCUIT in hold)
    metrics.DEAD_LETTER_GUARD_TRIPPED.set(Reason.GUARD in hold)


_PARTS: tuple[CredentialField, ...] = ("access_key", "secret_key", "security_token")


def _credentials(settings: Settings, log: FilteringBoundLogger) -> CredentialSource | None:
    """The VOD key; the parts secret files gave are read again when VOD answers 401."""
    vod = settings.vod
    if vod.access_key is None or vod.secret_key is None:
        return None
    key = Credentials(vod.access_key.get_secret_value(), vod.secret_key, vod.security_token)
    files = {part: path for part in _PARTS if (path := secret_file(f"vod.{part}")) is not None}
    return SecretFileCredentials(key, files, log) if files else StaticCredentials(key)
