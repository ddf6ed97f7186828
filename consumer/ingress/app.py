"""The ingest's HTTP application: ``POST /smn``, ``POST /mfs``, ``/livez``, ``/readyz``,
``/metrics`` on one port.

Every notification goes the same way: admitted (not shutting down, the source's rate,
requests at once), read (content type, size, JSON, depth), verified (SMN: shape, type
against its header, signature, topic; MFS: HMAC when a key is set), then produced to the
topic as received, keyed by the event's asset (``forward.py``), and answered: 200 once
the broker acknowledged it (or for a duplicate of one it did), 4xx when it is refused
(SMN never retries those), 503 when the sender should retry. Each request logs one line:
``notification_forwarded``, ``duplicate_suppressed``, ``notification_rejected`` (with its
``status``, ``reason`` and ``detail``) or one about an SMN subscription.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler
from structlog.typing import FilteringBoundLogger

from consumer.clock import SYSTEM_CLOCK, Clock
from consumer.config import IngestSettings
from consumer.errors import RecordError
from consumer.events import decode
from consumer.ingress import metrics
from consumer.ingress.certs import TrustStore
from consumer.ingress.confirm import Confirmer, where
from consumer.ingress.forward import Forwarder
from consumer.ingress.limits import Gate, RateLimiter, read_within, source_of
from consumer.ingress.mfs import check, signed_contents
from consumer.ingress.refusal import Refused, refuse_unsigned_event
from consumer.ingress.smn import SmnMessage, parse

__all__ = ["TRANSPORT_HEADER", "Ingress", "make_app"]

TRANSPORT_HEADER, ID_HEADER, RECEIVED_HEADER = (
    "ingest-transport",
    "ingest-message-id",
    "ingest-received-at",
)
MAX_DEPTH = 32  # VOD's bodies are four levels deep
# Content types a JSON body may arrive with. SMN's is undocumented (INGRESS.md: read the
# body as JSON whatever it says), so besides JSON and plain text, none at all and the
# defaults of HTTP clients (octet-stream, form-urlencoded) pass; what names another format
# (multipart, XML, HTML, images...) is refused with 415.
_JSON_TYPES = frozenset({"", "application/json", "text/json", "text/plain"})
_CLIENT_DEFAULTS = frozenset({"application/octet-stream", "application/x-www-form-urlencoded"})
_TEXT_TYPES = _JSON_TYPES | _CLIENT_DEFAULTS
_Work = Callable[[web.Request, dict[str, Any], float], Awaitable[web.Response]]


class Ingress:
    """The request handlers and what they share; ``stopping`` and ``broker_trouble`` are
    set by the server's life (``server.py``)."""

    def __init__(
        self,
        settings: IngestSettings,
        forwarder: Forwarder,
        trust: TrustStore,
        confirmer: Confirmer,
        log: FilteringBoundLogger,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._settings = settings
        self._forwarder = forwarder
        self._trust = trust
        self._confirmer = confirmer
        self._log = log
        self._clock = clock
        self._limiter = RateLimiter(settings.rate_per_source, settings.burst_per_source, clock)
        self._gate = Gate(settings.max_concurrent)
        key = settings.mfs.key
        self._mfs_key = key.get_secret_value().encode() if key is not None else None
        self._topics = frozenset(settings.smn.topic_urns)
        self.stopping = False
        #: Why not ready (None: ready); the server's broker probe keeps it current.
        self.broker_trouble: str | None = "not connected to the broker yet"

    def stop_taking(self) -> None:
        """Not ready, and new notifications get 503, from now on."""
        self.stopping = True

    # -- probes -------------------------------------------------------------------------

    async def livez(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _: web.Request) -> web.Response:
        why = "shutting down" if self.stopping else self.broker_trouble
        return web.Response(status=503 if why else 200, text=f"{why or 'ok'}\n")

    # -- notifications ------------------------------------------------------------------

    async def smn(self, request: web.Request) -> web.Response:
        return await self._handle(request, "smn", self._smn)

    async def mfs(self, request: web.Request) -> web.Response:
        return await self._handle(request, "mfs", self._mfs)

    async def _handle(self, request: web.Request, transport: str, work: _Work) -> web.Response:
        began = self._clock.monotonic()
        metrics.RECEIVED.labels(transport).inc()
        context: dict[str, Any] = {
            "transport": transport,
            "source": source_of(request, self._settings.trust_forwarded_for),
        }
        try:
            self._admit(context["source"])
        except Refused as refused:
            return self._refused(refused, context)
        metrics.IN_FLIGHT.inc()
        try:
            return await work(request, context, began + self._settings.answer_timeout)
        except Refused as refused:
            return self._refused(refused, context)
        except Exception:
            # A bug, not the sender's fault: 500, which SMN retries; the traceback logged.
            self._log.exception("ingest_error", **context)
            return self._refused(Refused(500, "internal", "internal error; retry"), context)
        finally:
            self._gate.leave()
            metrics.IN_FLIGHT.dec()
            metrics.ANSWER_SECONDS.labels(transport).observe(self._clock.monotonic() - began)

    def _admit(self, source: str) -> None:
        """Take a place among the requests at once, or raise :class:`Refused` (503)."""
        if self.stopping:
            raise Refused(503, "shutting_down", "shutting down; retry")
        if not self._limiter.allow(source):
            raise Refused(503, "rate_limited", "too many requests from this source; retry")
        if not self._gate.enter():
            raise Refused(503, "overloaded", "too many requests at once; retry")

    async def _smn(
        self, request: web.Request, context: dict[str, Any], deadline: float
    ) -> web.Response:
        body = await self._body(request, deadline)
        document = _json(body)
        message = parse(document, request.headers.get("X-SMN-MESSAGE-TYPE"))
        context.update(message_id=message.message_id[:80] or None, smn_type=message.type)
        if not message.verifiable:
            # Undocumented fields: nothing to verify against, so nothing is done with it.
            metrics.SUBSCRIPTIONS.labels("acknowledged").inc()
            self._log.warning("smn_message_acknowledged", **context, action="not forwarded")
            return _answer(200, "acknowledged")
        if not await self._trust.verify(message):
            raise Refused(403, "signature", "signature does not verify with a trusted certificate")
        context["topic_urn"] = message.topic_urn[:200]
        if self._topics and message.topic_urn not in self._topics:
            raise Refused(403, "topic", "topic_urn is not in ingest.smn.topic_urns")
        if message.type == "Notification":
            refuse_unsigned_event(document)
            return await self._forward(body, f"smn:{message.message_id}", context, deadline)
        if message.type == "SubscriptionConfirmation":
            return await self._confirm(message, context)
        metrics.SUBSCRIPTIONS.labels("unsubscribed").inc()
        self._log.error(
            "smn_unsubscribed",
            **context,
            action="this endpoint no longer receives the topic; subscribe it again in the "
            "SMN console if that was not intended",
        )
        return _answer(200, "acknowledged")

    async def _confirm(self, message: SmnMessage, context: dict[str, Any]) -> web.Response:
        delivery = f"smn:{message.message_id}"
        context["subscribe_url"] = where(message.subscribe_url)  # no query: the token
        if self._forwarder.seen(delivery):
            metrics.DUPLICATES.labels("smn").inc()
            self._log.info("duplicate_suppressed", **context)
            return _answer(200, "duplicate")
        status = await self._confirmer.confirm(message.subscribe_url)
        self._forwarder.remember(delivery)
        metrics.SUBSCRIPTIONS.labels("confirmed").inc()
        self._log.info("smn_subscription_confirmed", **context, status=status)
        return _answer(200, "confirmed")

    async def _mfs(
        self, request: web.Request, context: dict[str, Any], deadline: float
    ) -> web.Response:
        body = await self._body(request, deadline)
        document = _json(body)
        if not isinstance(document, dict) or not (
            "message" in document or "event_type" in document
        ):
            raise Refused(400, "malformed", "not an MFS callback (a JSON object with a message)")
        refuse_unsigned_event(document)
        if self._mfs_key is not None:
            contents = signed_contents(document, body)
            window = self._settings.mfs.timestamp_window
            check(request.headers, contents, self._mfs_key, window, self._clock.wall())
        digest = hashlib.sha256(body).hexdigest()
        context["message_id"] = f"sha256:{digest[:32]}"
        return await self._forward(body, f"mfs:{digest}", context, deadline)

    async def _forward(
        self, body: bytes, delivery: str, context: dict[str, Any], deadline: float
    ) -> web.Response:
        try:
            event = decode(body)
            context.update(event_type=event.event_type, asset_id=event.asset_id)
        except RecordError:
            context.update(event_type=None, asset_id=None)  # forwarded: the consumer decides
        asset = context["asset_id"]
        headers = [
            (TRANSPORT_HEADER, context["transport"].encode()),
            (ID_HEADER, str(context["message_id"]).encode()),
            (RECEIVED_HEADER, _iso(self._clock.wall()).encode()),
        ]
        key = asset.encode() if asset else None
        produced = await self._forwarder.forward(delivery, key, body, headers, deadline)
        if produced.duplicate:
            metrics.DUPLICATES.labels(context["transport"]).inc()
            self._log.info("duplicate_suppressed", **context)
            return _answer(200, "duplicate")
        metrics.FORWARDED.labels(context["transport"]).inc()
        self._log.info(
            "notification_forwarded",
            **context,
            partition=produced.partition,
            offset=produced.offset,
        )
        return _answer(200, "forwarded")

    async def _body(self, request: web.Request, deadline: float) -> bytes:
        kind = request.content_type.lower() if request.headers.get("Content-Type") else ""
        if kind not in _TEXT_TYPES and not kind.endswith("+json"):
            raise Refused(415, "content_type", f"content type {kind[:60]!r} is not JSON")
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Refused(413, "too_large", f"body larger than {limit} bytes")
        try:
            return await read_within(request, deadline - self._clock.monotonic())
        except web.HTTPRequestEntityTooLarge:
            raise Refused(413, "too_large", f"body larger than {limit} bytes") from None

    def _refused(self, refused: Refused, context: dict[str, Any]) -> web.Response:
        metrics.REJECTED.labels(context["transport"], refused.reason).inc()
        self._log.warning(
            "notification_rejected",
            **context,
            status=refused.status,
            reason=refused.reason,
            detail=refused.detail,
        )
        headers = {"Retry-After": "1"} if refused.status == 503 else None
        body = {"error": refused.reason, "detail": refused.detail}
        return web.json_response(body, status=refused.status, headers=headers, dumps=_dumps)


def _json(body: bytes) -> object:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "malformed", f"body is not JSON ({str(exc)[:80]})") from None
    if _deeper_than(document, MAX_DEPTH):
        raise Refused(400, "malformed", f"body nested deeper than {MAX_DEPTH} levels")
    return document


def _deeper_than(document: object, limit: int) -> bool:
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            if depth > limit:
                return True
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))
    return False


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _answer(status: int, result: str) -> web.Response:
    return web.json_response({"result": result}, status=status, dumps=_dumps)


def make_app(ingress: Ingress, max_body_bytes: int) -> web.Application:
    # aiohttp refuses larger bodies itself (413) as they are read: no buffer grows past it.
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post("/smn", ingress.smn)
    app.router.add_post("/mfs", ingress.mfs)
    app.router.add_get("/livez", ingress.livez)
    app.router.add_get("/readyz", ingress.readyz)
    app.router.add_get("/metrics", make_aiohttp_handler())
    return app
