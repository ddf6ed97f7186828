"""``cover-consumer ingest``: the ingest's life. The HTTP port opens at once (alive, not
ready); the producer connects in the background, tried again with back-off while the
broker is out of reach (notifications meanwhile get 503, which SMN and MFS retry); the
broker is probed every few seconds for ``/readyz``. SIGTERM/SIGINT: not ready, stop
listening, give requests in progress ``ingest.shutdown_timeout`` to be answered, flush the
producer, exit 0; a second signal exits at once with ``ExitCode.FORCED``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from aiokafka.errors import KafkaError
from structlog.typing import FilteringBoundLogger

from consumer.config import Settings
from consumer.config.ingest import TlsIngest
from consumer.errors import ConfigError, ExitCode
from consumer.ingress.app import Ingress, make_app
from consumer.ingress.certs import CertFetcher, TrustStore, load_pinned
from consumer.ingress.confirm import Confirmer
from consumer.ingress.dedup import Seen
from consumer.ingress.forward import Forwarder
from consumer.kafka.options import client_options
from consumer.logs import errors_muted, get_logger
from consumer.signals import stop_on_signals

__all__ = ["run"]

PROBE_INTERVAL = 2.0  # seconds between broker probes (readiness)
UNREACHABLE_AFTER = 4.0  # seconds without an answer before /readyz says so
START_BACKOFF, START_BACKOFF_MAX = 0.5, 15.0
# Records handed to the producer and not yet acknowledged, answered or not.
PENDING_PER_REQUEST = 4
# Room for the headers: a body at the limit still fits the producer (the broker decides).
HEADROOM = 16 * 1024


async def run(settings: Settings) -> int:
    log = get_logger()
    ingest = settings.ingest
    pinned = load_pinned(ingest.smn.certificates)
    tls = _tls(ingest.tls)
    now = datetime.now(UTC)
    for cert in pinned:
        if cert.not_after < now:
            log.warning(
                "smn_certificate_expired", certificate=cert.name, not_after=str(cert.not_after)
            )
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        options = {
            **client_options(settings.kafka),
            # Told apart from the daemon in the brokers' logs and quotas.
            "client_id": f"{settings.kafka.client_id}-ingest",
            "max_request_size": max(1 << 20, ingest.max_body_bytes + HEADROOM),
        }
        seen = Seen(ingest.dedup_window, ingest.dedup_max_entries)
        pending = ingest.max_concurrent * PENDING_PER_REQUEST
        forwarder = Forwarder(options, settings.kafka.topic, seen, log, pending)
        fetcher = CertFetcher(http, log) if ingest.smn.fetch_certificates else None
        confirmer = Confirmer(http, ingest.smn.confirm_hosts)
        ingress = Ingress(ingest, forwarder, TrustStore(pinned, fetcher), confirmer, log)
        runner = web.AppRunner(
            make_app(ingress, ingest.max_body_bytes),
            access_log=None,
            shutdown_timeout=ingest.shutdown_timeout,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, ingest.host, ingest.port, ssl_context=tls).start()
            _started(settings, runner, pinned_names=[c.name for c in pinned], log=log)
            stop_on_signals(stop, ingress.stop_taking)
            connected = asyncio.create_task(_keep_connected(forwarder, ingress, log))
            await stop.wait()
            connected.cancel()
        finally:
            ingress.stop_taking()
            began = time.monotonic()
            await runner.cleanup()  # stops listening; waits for requests in progress
            left = ingest.shutdown_timeout - (time.monotonic() - began)
            await forwarder.close(max(left, 1.0))
    log.info("shutdown", seconds=round(time.monotonic() - began, 3))
    return ExitCode.OK


def _started(
    settings: Settings, runner: web.AppRunner, pinned_names: list[str], log: FilteringBoundLogger
) -> None:
    ingest = settings.ingest
    port = runner.addresses[0][1] if runner.addresses else ingest.port
    log.info(
        "ingest_started",
        host=ingest.host,
        port=port,
        tls=ingest.tls.enabled,
        topic=settings.kafka.topic,
        smn_certificates=pinned_names,
        smn_topic_urns=list(ingest.smn.topic_urns) or "any",
        smn_confirm_hosts=list(ingest.smn.confirm_hosts),
        mfs_authenticated=ingest.mfs.key is not None,
    )
    if not ingest.smn.topic_urns:
        # Any cloud tenant can have SMN sign a notification of its own topic, then post it
        # here: the signature proves SMN sent it, only the topic says it is ours.
        log.warning(
            "smn_any_topic",
            action="POST /smn takes a signed notification of any SMN topic, anyone's; set "
            "ingest.smn.topic_urns to your VOD notification topic's URN",
        )
    if ingest.mfs.key is None:
        log.warning(
            "mfs_unauthenticated",
            action="POST /mfs takes any caller's JSON; set ingest.mfs.key (VOD console, "
            "Notification Settings) to require VOD's HMAC",
        )


def _tls(tls: TlsIngest) -> ssl.SSLContext | None:
    if tls.certfile is None or tls.keyfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    password = tls.password.get_secret_value() if tls.password is not None else None
    try:
        context.load_cert_chain(tls.certfile, tls.keyfile, password=password)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"ingest.tls: cannot load certfile and keyfile ({type(exc).__name__})"
        ) from None
    return context


async def _keep_connected(
    forwarder: Forwarder, ingress: Ingress, log: FilteringBoundLogger
) -> None:
    """Connect the producer (trying again with back-off), then probe the broker."""
    delay, attempt = START_BACKOFF, 0
    while not forwarder.started:
        attempt += 1
        try:
            with errors_muted("aiokafka"):
                await forwarder.start()
        except (KafkaError, OSError) as exc:
            log.warning(
                "broker_unavailable", attempt=attempt, error=type(exc).__name__, retry_in=delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, START_BACKOFF_MAX)
    log.info("producer_connected", idempotent=forwarder.idempotent)
    ingress.broker_trouble = None
    silent_since: float | None = None
    while True:
        await asyncio.sleep(PROBE_INTERVAL)
        try:
            await asyncio.wait_for(forwarder.probe(), PROBE_INTERVAL)
        except (KafkaError, OSError, TimeoutError) as exc:
            now = time.monotonic()
            silent_since = silent_since or now
            if now - silent_since >= UNREACHABLE_AFTER:
                ingress.broker_trouble = (
                    f"broker unreachable for {now - silent_since:.0f}s ({type(exc).__name__})"
                )
            continue
        silent_since = None
        ingress.broker_trouble = None
