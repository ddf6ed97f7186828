"""The daemon's life: start, consume until a signal, drain, commit, leave the group.

A broker that cannot be reached at start is tried again with back-off, one log line a
try, for up to ``consumer.start_timeout`` (alive, not ready), so a broker restarting with
the daemon does not crash-loop it. It returns ``ExitCode.OK`` after a clean shutdown; a
second signal exits at once with ``ExitCode.FORCED`` (``consumer.errors`` lists them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable

import aiohttp
from aiokafka.errors import KafkaError
from structlog.typing import FilteringBoundLogger

import consumer
from consumer import metrics
from consumer.config import Settings
from consumer.dispatch.routing import routes_for
from consumer.errors import ExitCode
from consumer.hold import Reason
from consumer.kafka.source import KafkaSource
from consumer.logs import errors_muted, get_logger
from consumer.service.health import BrokerContact, Health, serve
from consumer.service.wiring import Parts, build
from consumer.signals import stop_on_signals

__all__ = ["run"]

LAG_INTERVAL = 5.0  # seconds between lag gauge refreshes
PROBE_INTERVAL = 2.0  # seconds between broker probes (readiness)
START_BACKOFF, START_BACKOFF_MAX = 0.5, 15.0  # seconds between tries to reach the broker
GC_YOUNG_THRESHOLD = 10_000  # allocations between young collections (Python's default: 700)


async def run(settings: Settings) -> int:
    log = get_logger()
    router = routes_for(settings)
    stop = asyncio.Event()
    timeout = settings.consumer.shutdown_timeout
    async with aiohttp.ClientSession() as http:
        parts = build(settings, router, http, log)
        engine, source = parts.engine, parts.source
        circuit = parts.vod.circuit if parts.vod is not None else None
        health = _health(settings, parts)
        # Not ready from the first signal on: no new work while draining.
        stop_on_signals(stop, lambda: parts.hold.set(Reason.SHUTDOWN))
        stop_server, port = await serve(health, settings.http.host, settings.http.port)
        log.info("side_server_listening", host=settings.http.host, port=port)
        # Once joined: until then /readyz fails anyway, and the probe's metadata request
        # made aiokafka log an ERROR line every 2 s beside each broker_unavailable line.
        watch: asyncio.Task[None] | None = None
        follow: asyncio.Task[None] | None = None  # the VOD quota shares follow the group's work
        # Not joined yet: closing only has clients to stop, a few seconds at most.
        close_by = time.monotonic() + min(5.0, timeout)
        try:
            started = _start(parts, settings.consumer.start_timeout, log)
            if not await _until_stopped(started, stop):
                log.info("shutdown", reason="signal before the consumer started")
                return ExitCode.OK
            health.joined = True
            watch = asyncio.create_task(_watch_broker(source, health.contact, log))
            follow = asyncio.create_task(parts.follow_work(log))
            log.info(
                "consumer_started",
                topic=settings.kafka.topic,
                group_id=settings.kafka.group_id,
                routes=[[s.name for s in r.steps] for r in router.routes],
            )
            # Start-up objects (modules, models, clients) live for ever: keep them out of every
            # garbage collection from here on; this cut per-record CPU by a fifth in `make bench`.
            gc.freeze()
            # A record allocates some 16 tracked objects and frees them by reference counting
            # (the collector finds next to no cycles), yet at the default threshold of 700 a
            # young collection ran every ~45 records and walked every record in flight:
            # ~3% of the CPU per record. Ten thousand keeps them rare and still bounded.
            gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
            await _until_stopped(engine.run(), stop)  # returns only on a signal, or raises
            began = time.monotonic()
            close_by = began + timeout
            # The broker gets a slice of the budget to hear we leave, whatever the drain took.
            drained = await engine.shutdown(timeout - min(5.0, timeout / 5))
        finally:
            for task in (watch, follow):
                if task is not None:
                    task.cancel()
            if circuit is not None:
                circuit.stop()
            # Closed on every path, a failed start included: leaving is bounded anyway.
            close_by = max(close_by, time.monotonic() + 0.1)
            await source.close(max(close_by - time.monotonic(), 0.1))
            await parts.sink.close(max(close_by - time.monotonic(), 0.1))
            await parts.close_vod()
            await stop_server()
        log.info(
            "shutdown",
            drained=drained,
            seconds=round(time.monotonic() - began, 3),
            committed={f"{tp.topic}/{tp.partition}": o for tp, o in engine.committed().items()},
        )
    return ExitCode.OK


async def _start(parts: Parts, start_timeout: float, log: FilteringBoundLogger) -> None:
    """Connect and join, trying again with back-off while the broker cannot be reached."""
    deadline = time.monotonic() + start_timeout
    delay, attempt = START_BACKOFF, 0
    while True:
        attempt += 1
        try:
            # aiokafka logs each failed connection at ERROR: this loop's line says it once.
            with errors_muted("aiokafka"):
                await parts.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            left = deadline - time.monotonic()
            if not _retriable(exc) or left <= 0:
                raise
            log.warning(
                "broker_unavailable",
                attempt=attempt,
                error=type(exc).__name__,
                reason=str(exc),
                retry_in=round(min(delay, left), 1),
                gives_up_in=round(left),
            )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, START_BACKOFF_MAX)
        else:
            return


def _retriable(exc: BaseException) -> bool:
    return not isinstance(exc, KafkaError) or getattr(exc, "retriable", False) is True


async def _until_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first; True if the work finished."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


def _health(settings: Settings, parts: Parts) -> Health:
    engine = parts.engine
    health = Health(
        lambda: engine.last_step,
        settings.http.liveness_timeout,
        parts.hold,
        commits_failing_since=lambda: engine.commits_failing_since,
    )
    metrics.IN_FLIGHT.set_function(lambda: engine.in_flight)
    metrics.PAUSED_PARTITIONS.set_function(lambda: len(engine.paused))
    metrics.LAST_PROCESSED.set_function(lambda: parts.pipeline.last_outcome_at)
    metrics.BUILD_INFO.labels(consumer.__version__).set(1)
    return health


async def _watch_broker(
    source: KafkaSource, contact: BrokerContact, log: FilteringBoundLogger
) -> None:
    """Probe the broker every few seconds (readiness) and refresh the lag gauge."""
    reported: set[tuple[str, str]] = set()
    lag_due = 0.0
    while True:
        await asyncio.sleep(PROBE_INTERVAL)
        try:
            await asyncio.wait_for(source.probe(), PROBE_INTERVAL)
        except (KafkaError, OSError, TimeoutError) as exc:
            contact.unanswered(type(exc).__name__)
            continue
        contact.answered()
        if time.monotonic() < lag_due:
            continue
        lag_due = time.monotonic() + LAG_INTERVAL
        try:
            lags = await source.lag()
        except (KafkaError, TimeoutError) as exc:
            log.debug("lag_unknown", error=type(exc).__name__)
            continue
        current = {(tp.topic, str(tp.partition)): lag for tp, lag in lags.items()}
        for labels in reported - current.keys():
            metrics.LAG.remove(*labels)  # a partition this member no longer owns
        for labels, lag in current.items():
            metrics.LAG.labels(*labels).set(lag)
        reported = set(current)
